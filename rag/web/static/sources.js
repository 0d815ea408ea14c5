// A source's "open" button asks the server for the document at the cited place; the server
// looks the citation up in this page's conversation, so the page never names a file.
element.addEventListener('click', (event) => {
  const open = event.target.closest('button.open-doc');
  if (!open) return;
  trigger('open_doc', {turn: Number(open.dataset.turn), n: Number(open.dataset.n)});
});
