"""The page's layout (Chat and Documents tabs, the status line, the `ask` API) and serving."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import gradio as gr

from rag.config import Settings
from rag.ingest import SUPPORTED_SUFFIXES
from rag.security import page_auth, redact
from rag.web.chat import ChatOutput, EngineLike, ask_json, chat, new_chat
from rag.web.render import EMPTY_CHAT, esc
from rag.web.state import ChatTurn
from rag.web.uploads import delete_document, document_rows, ingest_uploads

STATIC = Path(__file__).with_name("static")
CHAT_CONCURRENCY = 4  # answers stream in parallel; uploads and deletes run one at a time


@cache
def static_text(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


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
                css_template=static_text("page.css"),
                js_on_load=static_text("citations.js"),
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
            sources = gr.HTML(
                "", elem_id="rag-sources", css_template=static_text("page.css"), js_on_load=None
            )

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
        label=f"Add documents ({', '.join(SUPPORTED_SUFFIXES)}; at most "
        f"{settings.max_upload_files} files of {settings.max_upload_mb} MB)",
        file_count="multiple",
        file_types=list(SUPPORTED_SUFFIXES),
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
