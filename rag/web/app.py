"""The page's layout (a sidebar of conversations, Chat and Documents tabs, the status line, the
`ask` API) and serving. Handlers stay thin: the work is in chat.py, uploads.py, viewer.py."""

from __future__ import annotations

import re
import secrets
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import gradio as gr

from rag.config import Settings
from rag.ingest import SUPPORTED_SUFFIXES
from rag.security import page_auth, redact
from rag.web.chat import EngineLike, ask_json, conversation_markdown, work_queue
from rag.web.render import cited, esc, render_all_sources, render_transcript
from rag.web.state import Pending, Session, Sessions
from rag.web.uploads import DOCUMENT_HEADERS, delete_document, document_rows, ingest_uploads
from rag.web.viewer import find_document, open_citation

STATIC = Path(__file__).with_name("static")
CHAT_CONCURRENCY = 4  # answers stream in parallel; uploads and deletes run one at a time
STORAGE_KEY = "rag-conversations"
# the viewer scrolls the cited span into view whenever it shows another document
VIEWER_JS = (
    "watch('value', () => { const m = element.querySelector('#rag-viewer-mark');"
    " if (m) m.scrollIntoView({block: 'center'}); });"
)
_URL = re.compile(r"\s*(?:@|at)?\s*\b[a-z][\w+.-]*://\S+", re.IGNORECASE)


@cache
def static_text(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def status_line(engine: EngineLike, settings: Settings | None = None) -> str:
    """Markdown: LLM, embedding model, documents and chunks. Addresses are left out: the model
    server's is internal, and Markdown would make it a link."""
    try:
        s = engine.status()
    except Exception as exc:
        return f"Status unavailable: {esc(_URL.sub('', redact(str(exc), settings)))}"

    def field(key: str) -> str:
        return esc(_URL.sub("", redact(str(s.get(key, "?")), settings)).strip())

    return (
        f"**LLM:** {field('llm')} · **Embeddings:** {field('embed_model')} · "
        f"**Documents:** {field('documents')} · **Chunks:** {field('chunks')}"
    )


def browser_secret(settings: Settings) -> str:
    """The key that encrypts conversations in the browser's storage; kept in the data dir so
    they survive a restart of the server (a new key each start would make them unreadable)."""
    path = settings.data_dir / "page-secret"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(24)
        path.write_text(value, encoding="utf-8")
        path.chmod(0o600)
        return value


def _key(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "default"


def _user(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None)


def build_app(engine: EngineLike, settings: Settings) -> gr.Blocks:
    """The page: conversations in a sidebar, Chat and Documents tabs, a status line and the
    `ask` API."""
    sessions = Sessions()
    with gr.Blocks(title="rag", analytics_enabled=False) as app:
        store = gr.BrowserState({}, storage_key=STORAGE_KEY, secret=browser_secret(settings))
        status = gr.Markdown(elem_id="rag-status")
        chat_view = _chat(engine, settings, sessions, store)
        with gr.Tab("Documents", id="documents"):
            table = _documents_tab(engine, settings, status)

        def ask(question: str, history: list | None = None) -> dict:
            """Answer one question; history is a list of {question, answer} or [q, a] pairs."""
            try:
                return ask_json(engine, question, history)
            except ValueError as exc:
                raise gr.Error(str(exc)) from exc

        gr.api(ask, api_name="ask", concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat")

        def refresh(stored: Any, request: gr.Request) -> tuple[Any, ...]:
            session = sessions.open(_key(request), stored, _user(request))
            return (status_line(engine, settings), document_rows(engine), *chat_view(session))

        app.load(
            refresh,
            inputs=store,
            outputs=[status, table, *chat_view.outputs],
            api_visibility="private",
        )

        def close(request: gr.Request) -> None:
            sessions.close(_key(request))

        app.unload(close)
    return app


class ChatView:
    """The components a conversation is shown in, and how a session fills them."""

    def __init__(self, transcript, sources, conversations, store, title) -> None:
        self.outputs = [transcript, sources, conversations, store, title]

    def __call__(self, session: Session) -> tuple[Any, ...]:
        conversation = session.current()
        turns = conversation.turns if conversation else []
        queued = session.queued(session.active)
        choices = [(c.title, c.id) for c in session.ordered()]
        return (
            render_transcript(turns, queued, busy=session.running),
            render_all_sources(turns),
            gr.update(choices=choices, value=session.active),
            session.to_store(),
            conversation.title if conversation else "",
        )


def _chat(
    engine: EngineLike, settings: Settings, sessions: Sessions, store: gr.BrowserState
) -> ChatView:
    limit = settings.max_question_chars
    with gr.Sidebar(label="Conversations", elem_id="rag-sidebar"):
        new_btn = gr.Button("New chat", elem_id="rag-new", variant="primary")
        conversations = gr.Radio(
            choices=[], label="Conversations", elem_id="rag-conversations", show_label=False
        )
        title = gr.Textbox(label="Title", elem_id="rag-title", max_lines=1)
        with gr.Row():
            rename_btn = gr.Button("Rename", elem_id="rag-rename", size="sm")
            delete_chat_btn = gr.Button(
                "Delete", elem_id="rag-delete-chat", size="sm", variant="stop"
            )
        export_btn = gr.Button("Export as Markdown", elem_id="rag-export-btn", size="sm")
        export_file = gr.File(
            label="Export", elem_id="rag-export", visible=False, interactive=False
        )
    with gr.Tab("Chat", id="chat"), gr.Row():
        with gr.Column(scale=3):
            transcript = gr.HTML(
                "",
                elem_id="rag-transcript",
                css_template=static_text("page.css"),
                js_on_load=static_text("citations.js"),
                autoscroll=True,
                max_height=640,
            )
            note = gr.Markdown("", elem_id="rag-note")
            question = gr.Textbox(
                label="Question",
                placeholder="Ask about your documents…",
                elem_id="rag-question",
                autofocus=True,
                max_length=limit,
                info=f"Up to {limit:,} characters. Enter sends; a question sent while an "
                "answer runs is asked after it.",
            )
            with gr.Row():
                ask_btn = gr.Button("Ask", variant="primary", elem_id="rag-ask")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="rag-stop", visible=False)
        with gr.Column(scale=2):
            with gr.Column(visible=False, elem_id="rag-viewer") as viewer:
                viewer_title = gr.Markdown(elem_id="rag-viewer-title")
                viewer_pages = gr.Markdown(elem_id="rag-viewer-pages")
                with gr.Row():
                    prev_btn = gr.Button("◀ Previous page", size="sm", elem_id="rag-viewer-prev")
                    next_btn = gr.Button("Next page ▶", size="sm", elem_id="rag-viewer-next")
                    close_btn = gr.Button("Close", size="sm", elem_id="rag-viewer-close")
                viewer_image = gr.Image(
                    type="pil",
                    interactive=False,
                    show_label=False,
                    elem_id="rag-viewer-page",
                    visible=False,
                    buttons=[],
                )
                viewer_text = gr.HTML(
                    "",
                    elem_id="rag-viewer-text",
                    css_template=static_text("page.css"),
                    js_on_load=VIEWER_JS,
                    max_height=520,
                )
            sources = gr.HTML(
                "",
                elem_id="rag-sources",
                css_template=static_text("page.css"),
                js_on_load=static_text("sources.js"),
            )
    viewing = gr.State(None)  # (turn, n, page) shown in the viewer
    view = ChatView(transcript, sources, conversations, store, title)

    def session_of(stored: Any, request: gr.Request) -> Session:
        return sessions.open(_key(request), stored, _user(request))

    # -- asking, queueing, stopping ---------------------------------------------------
    def accept(text: str, stored: Any, request: gr.Request) -> tuple[Any, ...]:
        """Queue the question (never drop it); the worker below answers it."""
        session = session_of(stored, request)
        text = (text or "").strip()
        if not text:
            return gr.skip(), "", *_skips(4)
        if len(text) > limit:  # the box caps what is typed; this is for anything else
            too_long = (
                f"**Too long:** the question is {len(text):,} characters long; the limit is "
                f"{limit:,}. Shorten it, then send it again."
            )
            return gr.skip(), too_long, *_skips(4)
        fresh = session.current() is None
        conversation = session.start(text)
        busy = session.enqueue(Pending(conversation.id, text))
        queued = (
            f"Queued: “{esc(text[:80])}” will be asked when this answer is done." if busy else ""
        )
        shown = view(session)
        return (
            "",
            queued,
            shown[0],
            gr.update(visible=False),
            gr.update(visible=True),
            shown[4] if fresh else gr.skip(),  # a new conversation's title, to rename it
        )

    run_outputs = [*view.outputs[:4], ask_btn, stop_btn, note]

    def run(stored: Any, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        session = session_of(stored, request)
        shown_sources = None
        for conversation in work_queue(engine, session, settings):
            transcript_html, sources_html, choices, saved, _ = view(session)
            turn_done = conversation.turns and conversation.turns[-1].done
            changed = sources_html != shown_sources
            shown_sources = sources_html
            yield (
                transcript_html,
                sources_html if changed else gr.skip(),
                choices if changed else gr.skip(),
                saved if changed or turn_done else gr.skip(),
                gr.skip(),
                gr.skip(),
                gr.skip(),
            )
        if session.running:  # another worker owns the queue; it resets the buttons
            yield _skips(len(run_outputs))
            return
        transcript_html, sources_html, choices, saved, _ = view(session)
        yield (
            transcript_html,
            sources_html,
            choices,
            saved,
            gr.update(visible=True),
            gr.update(visible=False),
            "",
        )

    chat_events = dict(
        api_visibility="private",
        concurrency_limit=CHAT_CONCURRENCY,
        concurrency_id="chat",
        show_progress="hidden",
    )
    accept_outputs = [question, note, transcript, ask_btn, stop_btn, title]
    for trigger in (question.submit, ask_btn.click):
        trigger(
            accept,
            inputs=[question, store],
            outputs=accept_outputs,
            api_visibility="private",
            queue=False,
            show_progress="hidden",
        ).then(run, inputs=store, outputs=run_outputs, **chat_events)

    def stop(stored: Any, request: gr.Request) -> str:
        session = session_of(stored, request)
        if not session.running:
            return ""
        session.stop.set()
        return "Stopping…"

    stop_btn.click(stop, inputs=store, outputs=note, api_visibility="private", queue=False)

    def regenerate(stored: Any, evt: gr.EventData, request: gr.Request) -> tuple[Any, ...]:
        session = session_of(stored, request)
        conversation = session.current()
        index = _int(getattr(evt, "_data", {}) or {}, "turn")
        if conversation is None or index is None or not 0 <= index < len(conversation.turns):
            return gr.skip(), "", *_skips(4)
        turn = conversation.turns[index]
        session.enqueue(Pending(conversation.id, turn.question, replace=index))
        busy = (gr.update(visible=False), gr.update(visible=True))
        return gr.skip(), "", view(session)[0], *busy, gr.skip()

    transcript.regenerate(
        regenerate,
        inputs=store,
        outputs=accept_outputs,
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    ).then(run, inputs=store, outputs=run_outputs, **chat_events)

    # -- the sidebar --------------------------------------------------------------------
    def select(conversation_id: str | None, stored: Any, request: gr.Request) -> tuple[Any, ...]:
        session = session_of(stored, request)
        session.select(conversation_id)
        return view(session)

    def new(stored: Any, request: gr.Request) -> tuple[Any, ...]:
        session = session_of(stored, request)
        session.select(None)
        return view(session)

    def rename(text: str, stored: Any, request: gr.Request) -> tuple[Any, ...]:
        session = session_of(stored, request)
        session.rename(session.active, text)
        return view(session)

    def delete_chat(stored: Any, request: gr.Request) -> tuple[Any, ...]:
        session = session_of(stored, request)
        session.delete(session.active)
        return view(session)

    sidebar = dict(outputs=view.outputs, api_visibility="private", queue=False)
    conversations.input(select, inputs=[conversations, store], **sidebar)
    new_btn.click(new, inputs=store, **sidebar)
    rename_btn.click(rename, inputs=[title, store], **sidebar)
    title.submit(rename, inputs=[title, store], **sidebar)
    delete_chat_btn.click(delete_chat, inputs=store, **sidebar)

    def export(stored: Any, request: gr.Request) -> Any:
        conversation = session_of(stored, request).current()
        if conversation is None or not conversation.turns:
            gr.Warning("Nothing to export yet: ask a question first.")
            return gr.update(visible=False)
        folder = Path(tempfile.mkdtemp(prefix="rag-export-"))
        name = re.sub(r"[^\w-]+", "-", conversation.title).strip("-")[:60] or "conversation"
        path = folder / f"{name}.md"
        path.write_text(conversation_markdown(conversation), encoding="utf-8")
        return gr.update(value=str(path), visible=True)

    export_btn.click(export, inputs=store, outputs=export_file, api_visibility="private")

    # -- the document viewer -------------------------------------------------------------
    viewer_outputs = [viewer, viewer_title, viewer_pages, viewer_image, viewer_text, viewing]

    def show(session: Session, turn: int, n: int, page: int | None) -> tuple[Any, ...]:
        conversation = session.current()
        turns = conversation.turns if conversation else []
        result = turns[turn].result if 0 <= turn < len(turns) else None
        citation = next((c for c in cited(result) if c.n == n), None) if result else None
        if citation is None:
            return (
                gr.update(visible=True),
                "That source is no longer shown.",
                "",
                gr.update(visible=False),
                "",
                None,
            )
        doc = find_document(engine.kb, citation.doc_id)
        shown = open_citation(engine.kb, citation, page)
        pages = f"Page {shown.page} of {shown.pages}" if shown.page else ""
        note_text = f"\n\n⚠️ {shown.error}" if shown.error else ""
        name = doc.file_name if doc else citation.title
        return (
            gr.update(visible=True),
            f"**{esc(shown.heading)}**{note_text}",
            pages,
            gr.update(value=shown.image, visible=shown.image is not None, label=name),
            shown.html,
            (turn, n, shown.page),
        )

    def open_doc(stored: Any, evt: gr.EventData, request: gr.Request) -> tuple[Any, ...]:
        data = getattr(evt, "_data", {}) or {}
        turn, n = _int(data, "turn"), _int(data, "n")
        if turn is None or n is None:
            return _skips(len(viewer_outputs))
        return show(session_of(stored, request), turn, n, None)

    def browse(step: int):
        def go(where: Any, stored: Any, request: gr.Request) -> tuple[Any, ...]:
            if not where or where[2] is None:
                return _skips(len(viewer_outputs))
            turn, n, page = where
            return show(session_of(stored, request), turn, n, max(1, page + step))

        return go

    sources.open_doc(
        open_doc,
        inputs=store,
        outputs=viewer_outputs,
        api_visibility="private",
        concurrency_id="viewer",
    )
    for button, step in ((prev_btn, -1), (next_btn, 1)):
        button.click(
            browse(step),
            inputs=[viewing, store],
            outputs=viewer_outputs,
            api_visibility="private",
            concurrency_id="viewer",
        )
    close_btn.click(
        lambda: (gr.update(visible=False), None),
        outputs=[viewer, viewing],
        api_visibility="private",
        queue=False,
    )
    return view


def _skips(n: int) -> tuple[Any, ...]:
    return tuple(gr.skip() for _ in range(n))


def _int(data: dict[str, Any], key: str) -> int | None:
    try:
        return int(data[key])
    except (KeyError, TypeError, ValueError):
        return None


def _documents_tab(engine: EngineLike, settings: Settings, status: gr.Markdown) -> gr.Dataframe:
    upload = gr.File(
        label=f"Add documents ({', '.join(SUPPORTED_SUFFIXES)}; at most "
        f"{settings.max_upload_files} files of {settings.max_upload_mb} MB)",
        file_count="multiple",
        elem_id="rag-upload",
    )
    message = gr.Markdown(elem_id="rag-docs-message")
    table = gr.Dataframe(
        headers=DOCUMENT_HEADERS,
        datatype=["str", "str", "str", "number", "str", "str"],
        interactive=False,
        elem_id="rag-documents",
        wrap=True,
    )
    with gr.Row():
        doc_id = gr.Textbox(
            label="Document id (click a row)", elem_id="rag-doc-id", scale=3, max_lines=1
        )
        delete_btn = gr.Button("Delete…", variant="stop", elem_id="rag-delete", scale=1)
    with gr.Row(visible=False, elem_id="rag-confirm") as confirm_row:
        confirm_text = gr.Markdown(elem_id="rag-confirm-text")
        confirm_btn = gr.Button("Yes, delete it", variant="stop", elem_id="rag-confirm-delete")
        cancel_btn = gr.Button("Cancel", elem_id="rag-cancel-delete")

    def on_upload(
        files: list[str] | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> tuple[str, list[list[Any]], str, None]:
        def report(done: int, total: int, name: str) -> None:
            progress((done, total), desc=f"Indexing {done} of {total}", unit="files")

        text = ingest_uploads(engine, files or [], settings, progress=report)
        return text, document_rows(engine), status_line(engine, settings), None

    def ask_delete(value: str) -> tuple[Any, ...]:
        value = (value or "").strip()
        doc = find_document(engine.kb, value) if value else None
        if doc is None:
            text = (
                "Click a document's row to choose it."
                if not value
                else (f"No document with id {esc(value)}.")
            )
            return text, gr.update(visible=False), ""
        prompt = f"Delete **{esc(doc.file_name)}** ({doc.chunks} chunks) from the knowledge base?"
        return "", gr.update(visible=True), prompt

    def on_delete(value: str) -> tuple[Any, ...]:
        text = delete_document(engine, value, settings)
        rows = document_rows(engine)
        return text, rows, status_line(engine, settings), "", gr.update(visible=False)

    def on_select(evt: gr.SelectData) -> tuple[str, Any]:
        row = evt.row_value or []
        return (str(row[-1]) if row else ""), gr.update(visible=False)

    upload.upload(lambda: "", outputs=message, api_visibility="private", queue=False).then(
        on_upload,
        inputs=upload,
        outputs=[message, table, status, upload],
        api_visibility="private",
        concurrency_id="kb",
    )
    delete_btn.click(
        ask_delete,
        inputs=doc_id,
        outputs=[message, confirm_row, confirm_text],
        api_visibility="private",
        queue=False,
    )
    confirm_btn.click(
        on_delete,
        inputs=doc_id,
        outputs=[message, table, status, doc_id, confirm_row],
        api_visibility="private",
        concurrency_id="kb",
    )
    cancel_btn.click(
        lambda: gr.update(visible=False),
        outputs=confirm_row,
        api_visibility="private",
        queue=False,
    )
    table.select(on_select, outputs=[doc_id, confirm_row], api_visibility="private", queue=False)
    return table


def launch(engine: EngineLike, settings: Settings) -> tuple[gr.Blocks, str]:
    """Start the page and the OpenAI-compatible API (/v1) on settings.host:port without
    blocking; returns the app and its URL. No share link, no analytics. The API's routes go
    into the page's own FastAPI app (ahead of Gradio's), so both share the port while the
    page's login, CORS and queue stay Gradio's."""
    from rag.server import api_routes

    auth = page_auth(settings)
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
        app_kwargs={"routes": api_routes(engine, settings, concurrency=CHAT_CONCURRENCY)},
    )
    return app, url


def serve(engine: EngineLike, settings: Settings) -> None:
    """Launch the page and /v1 (`launch`) and block."""
    app, url = launch(engine, settings)
    print(f"rag is ready at {url}", flush=True)
    app.block_thread()
