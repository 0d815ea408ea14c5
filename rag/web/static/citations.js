// Opens the cited passage in the sources panel when a [n] badge is clicked (event delegation:
// the transcript's content is re-rendered on every token, its root element is not).
element.addEventListener('click', (event) => {
  const badge = event.target.closest('a.cite');
  if (!badge) return;
  const target = document.getElementById(badge.getAttribute('href').slice(1));
  if (!target) return;
  event.preventDefault();
  target.open = true;
  target.classList.add('flash');
  setTimeout(() => target.classList.remove('flash'), 1500);
  target.scrollIntoView({block: 'nearest', behavior: 'smooth'});
});
