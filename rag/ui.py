"""The web page: a thin Gradio shell over `engine.answer()`'s event stream and `engine.kb`.

No chain logic lives here. The page renders events (streamed tokens, then the final answer with
clickable `[n]` citations and the cited passages), manages uploads into `data_dir/uploads`, and
exposes the `ask` API. All document text is untrusted and escaped before it reaches the page.
"""

from __future__ import annotations

import html
import json
import logging
import re
import shutil
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import gradio as gr

from rag.config import Settings
from rag.events import AnswerResult, Citation, Final, Searching, Sources, Token, Turn

log = logging.getLogger(__name__)

ALLOWED_EXTENSIONS = (".txt", ".md", ".html", ".pdf", ".docx")
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
CHAT_CONCURRENCY = 4  # answers stream in parallel; uploads and deletes run one at a time
REFUSAL_LABEL = "Not in your documents"
EMPTY_CHAT = '<div class="rag-empty">Ask a question about your documents.</div>'

CSS = """
.rag-turn { margin: 0 0 1.1em 0; }
.rag-q { font-weight: 600; margin-bottom: .3em; }
.rag-a { line-height: 1.55; padding: .55em .8em; border-radius: 8px;
  background: var(--background-fill-secondary); }
.rag-a.refused { border-left: 4px solid #d08a00; background: rgba(208,138,0,.08); }
.rag-a.error { border-left: 4px solid #c62828; background: rgba(198,40,40,.08); }
.rag-a.pending { opacity: .85; }
.rag-label { display: inline-block; font-size: .8em; font-weight: 600; padding: .05em .5em;
  margin-right: .5em; border-radius: 4px; background: #d08a00; color: #fff; }
.rag-a.error .rag-label { background: #c62828; }
a.cite { display: inline-block; font-size: .75em; font-weight: 600; line-height: 1.3;
  padding: 0 .4em; margin: 0 .1em; border-radius: 9px; text-decoration: none;
  vertical-align: super; background: var(--color-accent); color: #fff; cursor: pointer; }
details.searched { font-size: .8em; opacity: .75; margin-top: .4em; }
details.searched summary { cursor: pointer; }
.rag-sources h4 { margin: 0 0 .5em 0; }
details.src { margin: 0 0 .6em 0; border: 1px solid var(--border-color-primary);
  border-radius: 6px; padding: .35em .6em; }
details.src summary { cursor: pointer; font-weight: 600; }
details.src .meta { font-weight: 400; opacity: .7; margin-left: .4em; }
details.src .passage { white-space: pre-wrap; margin: .4em 0 0 0; font-size: .9em; }
details.src.flash { outline: 2px solid var(--color-accent); }
.passage mark { background: #ffe58a; color: #1f1f1f; padding: 0 .1em; }
.rag-none { opacity: .7; font-size: .9em; }
.rag-empty { opacity: .6; }
"""

# Opens the cited passage in the sources panel when a [n] badge is clicked (event delegation:
# the transcript's content is re-rendered on every token, its root element is not).
OPEN_CITATION_JS = """
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
"""

_CITE_RE = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_URL_USERINFO_RE = re.compile(r"(\b[a-zA-Z][\w+.-]*://)[^/@\s]+@")
_UNSAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


class EngineLike(Protocol):
    """What the page needs from `rag.answer.Engine` (duck-typed, so tests can script it)."""

    kb: Any

    def answer(self, question: str, history: Sequence[Turn]) -> Iterator[Any]: ...

    def status(self) -> dict[str, Any]: ...


class UploadError(ValueError):
    """An upload was refused; the message is shown to the user as is."""


@dataclass(frozen=True)
class ChatTurn:
    """One exchange as this browser session sees it; kept in `gr.State`, never globally."""

    question: str
    answer: str = ""
    result: AnswerResult | None = None
    question_used: str = ""
    error: str | None = None

    @property
    def in_history(self) -> bool:
        """Failed turns are shown but not sent back to the engine as context."""
        return self.result is not None and self.error is None


# ---------------------------------------------------------------- escaping and secrets


def esc(text: object) -> str:
    """html.escape, plus the template characters gr.HTML might otherwise interpret."""
    escaped = html.escape(str(text), quote=True)
    return escaped.replace("$", "&#36;").replace("{", "&#123;").replace("}", "&#125;")


def redact(text: str, settings: Settings | None = None) -> str:
    """Strip credentials from URLs and any configured secret, so they never reach page or log."""
    text = _URL_USERINFO_RE.sub(r"\1", text)
    if settings is not None:
        for secret in (settings.llm_api_key, settings.embed_api_key, settings.auth):
            value = secret.get_secret_value() if secret is not None else ""
            if value:
                text = text.replace(value, "***")
    return text


# ---------------------------------------------------------------- rendering


def render_answer_text(text: str, cited: Iterable[int], turn: int) -> str:
    """Escaped answer text whose `[n]` markers become badges linking to passage `n`."""
    known = set(cited)

    def badge(match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
        if not all(n in known for n in numbers):
            return match.group(0)
        return "".join(
            f'<a class="cite" href="#src-{turn}-{n}" data-n="{n}">[{n}]</a>' for n in numbers
        )

    return _CITE_RE.sub(badge, esc(text)).replace("\n", "<br>")


def highlight_span(citation: Citation) -> str:
    """The chunk text, escaped, with the supporting span wrapped in <mark>."""
    text = citation.text
    start = max(0, min(len(text), citation.start - citation.chunk_start))
    end = max(start, min(len(text), citation.end - citation.chunk_start))
    if start == end:
        return esc(text)
    return f"{esc(text[:start])}<mark>{esc(text[start:end])}</mark>{esc(text[end:])}"


def cited(result: AnswerResult) -> list[Citation]:
    """The citations to show: none for a refusal or an error, one per number, in order."""
    if result.refused or result.error:
        return []
    unique = {c.n: c for c in reversed(result.citations)}
    return [unique[n] for n in sorted(unique)]


def render_sources(result: AnswerResult | None, turn: int) -> str:
    """The sources panel: the cited passages only, each collapsible, span highlighted."""
    if result is None:
        return ""
    citations = cited(result)
    if not citations:
        return '<div class="rag-sources"><p class="rag-none">No sources.</p></div>'
    items = []
    for c in citations:
        meta = esc(c.published) if c.published else ""
        items.append(
            f'<details class="src" id="src-{turn}-{c.n}" data-n="{c.n}">'
            f'<summary>[{c.n}] {esc(c.title)}<span class="meta">{meta}</span></summary>'
            f'<div class="passage">{highlight_span(c)}</div></details>'
        )
    return f'<div class="rag-sources"><h4>Sources</h4>{"".join(items)}</div>'


def _searched(question_used: str) -> str:
    if not question_used:
        return ""
    return (
        '<details class="searched"><summary>searched for</summary>'
        f'<span class="question-used">{esc(question_used)}</span></details>'
    )


def render_turn(turn: ChatTurn, index: int) -> str:
    """One question and its answer: streaming, final, refused or failed."""
    result = turn.result
    if turn.error is not None:
        css, label = "error", '<span class="rag-label">Error</span>'
        body = esc(turn.error)
    elif result is None:
        css, label, body = "pending", "", esc(turn.answer).replace("\n", "<br>") or "…"
    elif result.refused:
        css, label = "refused", f'<span class="rag-label">{REFUSAL_LABEL}</span>'
        body = esc(result.answer).replace("\n", "<br>")
    else:
        css, label = "answered", ""
        body = render_answer_text(result.answer, [c.n for c in cited(result)], index)
    return (
        f'<div class="rag-turn" data-turn="{index}"><div class="rag-q">{esc(turn.question)}</div>'
        f'<div class="rag-a {css}">{label}<span class="answer-text">{body}</span>'
        f"{_searched(turn.question_used)}</div></div>"
    )


def render_transcript(turns: Sequence[ChatTurn]) -> str:
    """The whole conversation of this session."""
    if not turns:
        return EMPTY_CHAT
    return "".join(render_turn(t, i) for i, t in enumerate(turns))


def error_message(error: str, settings: Settings | None = None) -> str:
    """A clear message for a failed LLM call; the page stays usable."""
    return (
        f"The language model endpoint failed: {redact(error, settings)}. "
        "Check that it is running and reachable, then ask again."
    )


# ---------------------------------------------------------------- chat


def history_of(turns: Sequence[ChatTurn]) -> list[Turn]:
    """The engine's view of this session: completed exchanges only."""
    return [Turn(t.question, t.answer) for t in turns if t.in_history]


def _apply(event: object, turn: ChatTurn, settings: Settings | None) -> ChatTurn:
    """The session's view of the current turn after one engine event."""
    if isinstance(event, Searching):
        return replace(turn, question_used=event.question_used)
    if isinstance(event, Sources):
        return turn
    if isinstance(event, Token):
        return replace(turn, answer=turn.answer + event.text)
    if isinstance(event, Final):
        result = event.result
        error = error_message(result.error, settings) if result.error else None
        return replace(
            turn,
            answer=result.answer,
            result=result,
            question_used=result.question_used or turn.question_used,
            error=error,
        )
    return turn


ChatOutput = tuple[str, str, list[ChatTurn], str]


def _close(stream: object) -> None:
    close = getattr(stream, "close", None)
    if callable(close):
        close()


def chat(
    engine: EngineLike,
    question: str,
    turns: Sequence[ChatTurn] | None,
    settings: Settings | None = None,
) -> Iterator[ChatOutput]:
    """Streams one answer: yields (transcript, sources, session turns, cleared textbox)."""
    past = list(turns or [])
    question = (question or "").strip()
    if not question:
        last = past[-1] if past else None
        yield render_transcript(past), render_sources(last and last.result, len(past) - 1), past, ""
        return
    index, turn = len(past), ChatTurn(question=question)
    yield render_transcript([*past, turn]), "", past, ""
    stream = None
    try:
        stream = engine.answer(question, history_of(past))
        for event in stream:
            turn = _apply(event, turn, settings)
            yield render_transcript([*past, turn]), render_sources(turn.result, index), past, ""
    except Exception as exc:  # the engine failed; the page must stay up
        log.warning("answer failed: %s", redact(repr(exc), settings))
        turn = replace(turn, error=f"Could not answer: {redact(str(exc), settings)}")
    finally:
        _close(stream)  # the browser may have gone away: stop the LLM stream now, not at GC
    if turn.result is None and turn.error is None:
        turn = replace(turn, error="The engine ended without an answer.")
    done = [*past, turn]
    yield render_transcript(done), render_sources(turn.result, index), done, ""


def new_chat() -> ChatOutput:
    """Forget this session's conversation."""
    return EMPTY_CHAT, "", [], ""


# ---------------------------------------------------------------- ask API


def parse_history(history: object) -> list[Turn]:
    """API history: a JSON list of {"question","answer"} objects or [question, answer] pairs."""
    if history is None or history == "":
        return []
    if isinstance(history, str):
        history = json.loads(history)
    if not isinstance(history, list):
        raise ValueError("history must be a list")
    turns = []
    for item in history:
        if isinstance(item, dict) and "question" in item and "answer" in item:
            turns.append(Turn(str(item["question"]), str(item["answer"])))
        elif isinstance(item, list | tuple) and len(item) == 2:
            turns.append(Turn(str(item[0]), str(item[1])))
        else:
            raise ValueError(f"bad history item: {item!r}")
    return turns


def ask_json(engine: EngineLike, question: str, history: object = None) -> dict[str, Any]:
    """Drain the event stream and return `AnswerResult.to_json()`."""
    for event in engine.answer(question, parse_history(history)):
        if isinstance(event, Final):
            return event.result.to_json()
    raise RuntimeError("the engine ended without a Final event")


# ---------------------------------------------------------------- documents


def sanitize_filename(name: str) -> str:
    """Basename only, ASCII letters/digits/`._-`, no leading dots, bounded length."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    base = _UNSAFE_NAME_RE.sub("_", base).strip("._ ")
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = stem.strip("._ ")[:100] or "upload"
    return f"{stem}.{ext.lower()[:10]}" if ext else stem


def uploads_dir(settings: Settings) -> Path:
    return settings.data_dir / "uploads"


def _unique(name: str, taken: set[str]) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    candidate, i = name, 1
    while candidate in taken:
        candidate = f"{stem}-{i}.{ext}" if ext else f"{stem}-{i}"
        i += 1
    taken.add(candidate)
    return candidate


def validate_uploads(paths: Sequence[str | Path], settings: Settings) -> list[tuple[Path, str]]:
    """(source, safe name) per file, or UploadError listing every problem; nothing is copied."""
    if not paths:
        raise UploadError("No files were uploaded.")
    if len(paths) > settings.max_upload_files:
        raise UploadError(
            f"Too many files: {len(paths)} (at most {settings.max_upload_files} per upload)."
        )
    problems, planned, taken = [], [], set()
    limit = settings.max_upload_mb * 1024 * 1024
    for raw in paths:
        source = Path(raw)
        name = sanitize_filename(source.name)
        ext = Path(name).suffix.lower()
        if ext not in ALLOWED_EXTENSIONS:
            problems.append(f"{name}: unsupported type (allowed: {', '.join(ALLOWED_EXTENSIONS)})")
        elif not source.is_file():
            problems.append(f"{name}: the upload did not arrive")
        elif source.stat().st_size > limit:
            problems.append(f"{name}: larger than {settings.max_upload_mb} MB")
        else:
            planned.append((source, _unique(name, taken)))
    if problems:
        raise UploadError("Nothing was added.\n" + "\n".join(f"- {esc(p)}" for p in problems))
    return planned


@dataclass
class Staged:
    """A file copied into the uploads folder, with what it replaced (to undo a failed ingest)."""

    path: Path
    previous: bytes | None

    def undo(self) -> None:
        if self.previous is None:
            self.path.unlink(missing_ok=True)
        else:
            self.path.write_bytes(self.previous)


def stage_uploads(planned: Sequence[tuple[Path, str]], settings: Settings) -> list[Staged]:
    """Copy validated uploads into `data_dir/uploads` so the knowledge base owns its copies."""
    target = uploads_dir(settings)
    target.mkdir(parents=True, exist_ok=True)
    staged = []
    for source, name in planned:
        dest = target / name
        previous = dest.read_bytes() if dest.is_file() else None
        shutil.copyfile(source, dest)
        staged.append(Staged(dest, previous))
    return staged


def _count(value: object) -> int:
    if isinstance(value, list | tuple | set | frozenset | dict):
        return len(value)
    return int(value or 0)  # type: ignore[call-overload]


def _same_file(a: object, b: Path) -> bool:
    try:
        return Path(str(a)).resolve() == b.resolve()
    except OSError:
        return False


def ingest_uploads(engine: EngineLike, paths: Sequence[str | Path], settings: Settings) -> str:
    """Validate, copy and ingest; returns a message. Files that fail change nothing."""
    try:
        staged = stage_uploads(validate_uploads(paths, settings), settings)
    except UploadError as exc:
        return str(exc)
    try:
        report = engine.kb.ingest([s.path for s in staged])
    except Exception as exc:
        for s in staged:
            s.undo()
        log.warning("ingest failed: %s", redact(repr(exc), settings))
        return f"Nothing was added: {esc(redact(str(exc), settings))}"
    errors = list(getattr(report, "errors", []) or [])
    for s in staged:
        if any(_same_file(e.path, s.path) for e in errors):
            s.undo()
    lines = [
        f"Added {_count(report.added)}, updated {_count(report.updated)}, "
        f"unchanged {_count(report.unchanged)} ({_count(report.chunks)} chunks)."
    ]
    lines += [f"- {esc(Path(str(e.path)).name)}: {esc(e.message)}" for e in errors]
    return "\n".join(lines)


def document_rows(engine: EngineLike) -> list[list[Any]]:
    """The documents table: title, date, chunks, id."""
    return [[d.title, d.published or "", d.chunks, d.doc_id] for d in engine.kb.documents()]


def delete_document(engine: EngineLike, doc_id: str, settings: Settings) -> str:
    """Delete one document by id, and our uploaded copy of it if there is one."""
    doc_id = (doc_id or "").strip()
    if not doc_id:
        return "Enter a document id (click a row to fill it in)."
    doc = next((d for d in engine.kb.documents() if d.doc_id == doc_id), None)
    if not engine.kb.delete(doc_id):
        return f"No document with id {esc(doc_id)}."
    path = getattr(doc, "path", None)
    if path:
        upload = Path(str(path)).resolve()
        if upload.is_relative_to(uploads_dir(settings).resolve()):
            upload.unlink(missing_ok=True)
    title = getattr(doc, "title", doc_id)
    return f"Deleted {esc(title)}."


def status_line(engine: EngineLike, settings: Settings | None = None) -> str:
    """Markdown: LLM endpoint, embedding model, documents and chunks."""
    try:
        s = engine.status()
    except Exception as exc:
        return f"Status unavailable: {esc(redact(str(exc), settings))}"

    def field(key: str) -> str:
        return esc(redact(str(s.get(key, "?")), settings))

    return (
        f"**LLM:** {field('llm')} · **Embeddings:** {field('embed_model')} · "
        f"**Documents:** {field('documents')} · **Chunks:** {field('chunks')}"
    )


# ---------------------------------------------------------------- the page


def build_app(engine: EngineLike, settings: Settings) -> gr.Blocks:
    """The page: Chat and Documents tabs, a status line and the `ask` API."""
    with gr.Blocks(title="rag", analytics_enabled=False) as app:
        status = gr.Markdown(elem_id="rag-status")
        with gr.Tab("Chat", id="chat"):
            _chat_tab(engine, settings)
        with gr.Tab("Documents", id="documents"):
            table = _documents_tab(engine, settings, status)

        def ask(question: str, history: list | None = None) -> dict:
            """Answer one question; history is a list of {question, answer} or [q, a] pairs."""
            try:
                return ask_json(engine, question, history)
            except ValueError as exc:
                raise gr.Error(str(exc)) from exc

        gr.api(ask, api_name="ask", concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat")

        def refresh() -> tuple[str, list[list[Any]]]:
            return status_line(engine, settings), document_rows(engine)

        app.load(refresh, outputs=[status, table], api_visibility="private")
    return app


def _chat_tab(engine: EngineLike, settings: Settings) -> None:
    session = gr.State([])  # per browser session; Gradio copies the default for each
    with gr.Row():
        with gr.Column(scale=3):
            transcript = gr.HTML(
                EMPTY_CHAT,
                elem_id="rag-transcript",
                css_template=CSS,
                js_on_load=OPEN_CITATION_JS,
                autoscroll=True,
                max_height=640,
            )
            question = gr.Textbox(
                label="Question",
                placeholder="Ask about your documents…",
                elem_id="rag-question",
                autofocus=True,
            )
            with gr.Row():
                ask_btn = gr.Button("Ask", variant="primary", elem_id="rag-ask")
                new_btn = gr.Button("New chat", elem_id="rag-new")
        with gr.Column(scale=2):
            sources = gr.HTML("", elem_id="rag-sources", css_template=CSS, js_on_load=None)

    def respond(text: str, turns: list[ChatTurn]) -> Iterator[ChatOutput]:
        yield from chat(engine, text, turns, settings)

    outputs = [transcript, sources, session, question]
    for trigger in (question.submit, ask_btn.click):
        trigger(
            respond,
            inputs=[question, session],
            outputs=outputs,
            api_visibility="private",
            concurrency_limit=CHAT_CONCURRENCY,
            concurrency_id="chat",
            show_progress="hidden",
        )
    new_btn.click(new_chat, outputs=outputs, api_visibility="private", queue=False)


def _documents_tab(engine: EngineLike, settings: Settings, status: gr.Markdown) -> gr.Dataframe:
    upload = gr.File(
        label=f"Add documents ({', '.join(ALLOWED_EXTENSIONS)}; at most "
        f"{settings.max_upload_files} files of {settings.max_upload_mb} MB)",
        file_count="multiple",
        file_types=list(ALLOWED_EXTENSIONS),
        elem_id="rag-upload",
    )
    message = gr.Markdown(elem_id="rag-docs-message")
    table = gr.Dataframe(
        headers=["Title", "Published", "Chunks", "ID"],
        datatype=["str", "str", "number", "str"],
        interactive=False,
        elem_id="rag-documents",
        wrap=True,
    )
    with gr.Row():
        doc_id = gr.Textbox(label="Document id", elem_id="rag-doc-id", scale=3)
        delete_btn = gr.Button("Delete", variant="stop", elem_id="rag-delete", scale=1)

    def on_upload(
        files: list[str] | None,
        progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008
    ) -> tuple[str, list[list[Any]], str, None]:
        progress(0.1, desc="Checking and indexing…")
        text = ingest_uploads(engine, files or [], settings)
        return text, document_rows(engine), status_line(engine, settings), None

    def on_delete(value: str) -> tuple[str, list[list[Any]], str, str]:
        text = delete_document(engine, value, settings)
        return text, document_rows(engine), status_line(engine, settings), ""

    def on_select(evt: gr.SelectData) -> str:
        row = evt.row_value or []
        return str(row[-1]) if row else ""

    upload.upload(
        on_upload,
        inputs=upload,
        outputs=[message, table, status, upload],
        api_visibility="private",
        concurrency_id="kb",
    )
    delete_btn.click(
        on_delete,
        inputs=doc_id,
        outputs=[message, table, status, doc_id],
        api_visibility="private",
        concurrency_id="kb",
    )
    table.select(on_select, outputs=doc_id, api_visibility="private", queue=False)
    return table


# ---------------------------------------------------------------- serving


def check_bind(settings: Settings) -> tuple[str, str] | None:
    """Gradio auth for `settings`, or None; refuses non-local addresses without auth."""
    auth = settings.auth.get_secret_value() if settings.auth is not None else ""
    if auth:
        user, sep, password = auth.partition(":")
        if not (sep and user and password):
            raise ValueError("RAG_AUTH must look like user:password.")
        return user, password
    if settings.host not in LOCAL_HOSTS:
        raise ValueError(
            f"Refusing to serve on {settings.host}: the page would be reachable from other "
            "machines without a password. Set RAG_AUTH=user:password, or use "
            "RAG_HOST=127.0.0.1."
        )
    return None


def serve(engine: EngineLike, settings: Settings) -> None:
    """Launch the page on settings.host:port and block; no share link, no analytics."""
    auth = check_bind(settings)
    app = build_app(engine, settings)
    app.queue(default_concurrency_limit=1)
    _, url, _ = app.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        auth=auth,
        max_file_size=f"{settings.max_upload_mb}mb",
        quiet=True,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        prevent_thread_lock=True,
        footer_links=["api"],
    )
    print(f"rag is ready at {url}", flush=True)
    app.block_thread()
