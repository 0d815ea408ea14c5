// The transcript's clicks (event delegation: its content is re-rendered on every token, its
// root element is not). A [n] badge of any answer opens that answer's passage in the sources
// panel, which holds every answer's sources and shows one answer's at a time.
const panel = () => document.getElementById('rag-sources');

function showTurn(turn) {
  const root = panel();
  if (!root) return;
  root.querySelectorAll('section.turn-sources').forEach((group) => {
    group.hidden = group.dataset.turn !== String(turn);
  });
}

function showSource(turn, n) {
  showTurn(turn);
  const target = document.getElementById(`src-${turn}-${n}`);
  if (!target) return;
  target.open = true;
  target.classList.add('flash');
  setTimeout(() => target.classList.remove('flash'), 1500);
  target.scrollIntoView({block: 'nearest', behavior: 'smooth'});
}

function copyByCommand(text) {
  const area = document.createElement('textarea');
  area.value = text;
  document.body.appendChild(area);
  area.select();
  document.execCommand('copy');
  area.remove();
}

function copyText(text) {
  // no clipboard API over plain http to another host, nor without the permission
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text).catch(() => copyByCommand(text));
  }
  copyByCommand(text);
  return Promise.resolve();
}

element.addEventListener('click', (event) => {
  const badge = event.target.closest('a.cite');
  if (badge) {
    event.preventDefault();
    showSource(badge.dataset.turn, badge.dataset.n);
    return;
  }
  const action = event.target.closest('button.act');
  if (!action) return;
  const turn = action.closest('.rag-actions').dataset.turn;
  if (action.classList.contains('act-copy')) {
    const answer = element.querySelector(`.rag-turn[data-turn="${turn}"] .answer-text`);
    copyText(answer ? answer.innerText : '').then(() => {
      action.textContent = 'Copied';
      setTimeout(() => { action.textContent = 'Copy'; }, 1500);
    });
  } else if (action.classList.contains('act-regen')) {
    trigger('regenerate', {turn: Number(turn)});
  } else if (action.classList.contains('act-sources')) {
    showTurn(turn);
    const root = panel();
    if (root) root.scrollIntoView({block: 'nearest', behavior: 'smooth'});
  }
});

// The question box: a live count once it nears the limit, so a capped paste is never silent
// (delegated to the document: the box may mount after this component).
document.addEventListener('input', (event) => {
  const box = event.target.closest('#rag-question textarea');
  if (!box || !(box.maxLength > 0)) return;
  let count = document.getElementById('rag-question-count');
  if (!count) {
    count = document.createElement('div');
    count.id = 'rag-question-count';
    box.parentElement.appendChild(count);
  }
  const n = box.value.length;
  const full = n >= box.maxLength;
  count.textContent = full
    ? `${n} / ${box.maxLength} characters: the limit; anything longer is cut off.`
    : (n >= box.maxLength * 0.8 ? `${n} / ${box.maxLength} characters` : '');
  count.classList.toggle('full', full);
});

// On a phone the sidebar would cover the conversation: start with it closed (its button
// opens it). Gradio's Sidebar has no width-dependent default of its own.
if (window.matchMedia('(max-width: 700px)').matches) {
  const closeSidebar = (tries) => {
    const toggle = document.querySelector('#rag-sidebar.open button.toggle-button');
    if (toggle) toggle.click();
    else if (tries > 0 && !document.querySelector('#rag-sidebar:not(.open)')) {
      requestAnimationFrame(() => closeSidebar(tries - 1));
    }
  };
  closeSidebar(120);
}
