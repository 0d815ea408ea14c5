"""The page in headless Chromium, and the `ask` API through gradio_client.

The engine is a fixture: `engine` is a scripted fake defined here; override `page_engine` (and
`page_questions`) to drive the same tests against the real engine.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import Browser, Page, expect, sync_playwright

from rag.config import Settings
from rag.events import (
    AnswerResult,
    Citation,
    Final,
    Passage,
    Searching,
    Sources,
    Token,
    Turn,
)
from rag.knowledge_base import DocumentInfo, FileError, IngestReport
from rag.web import build_app

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("RAG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot-answer.png"
TIMEOUT_MS = int(os.environ.get("RAG_PAGE_TIMEOUT_MS", "30000"))
DOC_ROWS = "#rag-documents [role=row][data-index]"  # Gradio's grid rows (not its sizing table)
expect.set_options(timeout=TIMEOUT_MS)


# ---------------------------------------------------------------- a scripted engine

CHUNK = (
    "Ada Lovelace wrote the first published algorithm for Babbage's Analytical Engine "
    "in 1843. <script>alert('x')</script> ${document.title} {{value}} Her notes were signed."
)
SPAN = "Ada Lovelace wrote the first published algorithm"


class FakeKB:
    """Documents in a dict; ingest reads the files so uploads really have to arrive. Returns the
    knowledge base's real record types."""

    def __init__(self) -> None:
        self.docs: dict[str, DocumentInfo] = {
            "lovelace": DocumentInfo(
                "lovelace", "Notes on the Analytical Engine", 3, "hash", published="1843-10-01"
            )
        }
        self.lock = threading.Lock()

    def ingest(self, paths: Sequence[Path], progress: Any = None) -> IngestReport:
        report = IngestReport()
        with self.lock:
            for path in paths:
                try:
                    text = Path(path).read_text(encoding="utf-8")
                except UnicodeDecodeError:
                    report.errors.append(FileError(str(path), "not a readable document"))
                    continue
                doc_id = hashlib.sha1(str(path).encode()).hexdigest()[:12]
                (report.updated if doc_id in self.docs else report.added).append(doc_id)
                self.docs[doc_id] = DocumentInfo(
                    doc_id, Path(path).stem, 1 + len(text) // 500, "hash", path=str(path)
                )
                report.chunks += self.docs[doc_id].chunks
        return report

    def documents(self) -> list[DocumentInfo]:
        with self.lock:
            return list(self.docs.values())

    def delete(self, doc_id: str) -> bool:
        with self.lock:
            return self.docs.pop(doc_id, None) is not None


class FakeEngine:
    """Answers anything mentioning Lovelace from one passage; refuses everything else.

    `gate`, when cleared, holds the Final event back so a test can see the streamed tokens.
    """

    def __init__(self) -> None:
        self.kb = FakeKB()
        self.gate = threading.Event()
        self.gate.set()

    def status(self) -> dict[str, Any]:
        docs = self.kb.documents()
        return {
            "llm": "fake-llm @ http://127.0.0.1:9/v1",
            "embed_model": "fake-embed",
            "documents": len(docs),
            "chunks": sum(d.chunks for d in docs),
        }

    def answer(self, question: str, history: Sequence[Turn]) -> Iterator[Any]:
        used = f"{history[-1].question} / {question}" if history else question
        yield Searching(used)
        passage = Passage(
            1,
            "lovelace#0",
            "lovelace",
            "Notes on the Analytical Engine",
            CHUNK,
            0,
            len(CHUNK),
            "1843-10-01",
        )
        yield Sources([passage])
        if "lovelace" not in used.lower():
            text = "I can't find that in your documents."
            yield Token(text)
            yield Final(AnswerResult(text, True, [], question, used, [passage]))
            return
        text = "Ada Lovelace wrote it in 1843 [1]."
        for word in text.split(" "):
            yield Token(word + " ")
        self.gate.wait(timeout=30)
        citation = Citation(
            1, "lovelace", passage.title, CHUNK, 0, len(SPAN), passage.published, 0, len(CHUNK)
        )
        yield Final(AnswerResult(text, False, [citation], question, used, [passage]))


# ---------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Questions:
    answerable: str
    unanswerable: str


@pytest.fixture(scope="module")
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture(scope="module")
def page_engine(engine: Any) -> Any:
    """The engine behind the page; override this fixture to test the real one."""
    return engine


@pytest.fixture(scope="module")
def page_questions() -> Questions:
    """One question the page's documents answer and one they don't."""
    return Questions("Who wrote the first algorithm, Lovelace?", "What is the capital of Peru?")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("page"), host="127.0.0.1", port=_free_port())


@pytest.fixture(scope="module")
def page_url(page_engine: Any, page_settings: Settings) -> Iterator[str]:
    app = build_app(page_engine, page_settings)
    app.queue()
    _, url, _ = app.launch(
        server_name=page_settings.host,
        server_port=page_settings.port,
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
        share=False,
    )
    yield url
    app.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, page_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    external: list[str] = []
    page.on("request", lambda r: external.append(r.url) if not _is_local(r.url) else None)
    page.goto(page_url)
    expect(page.locator("#rag-status")).to_contain_text("Documents:")
    yield page
    context.close()
    assert external == [], "the page must work offline"


def _is_local(url: str) -> bool:
    parsed = urlsplit(url)
    return parsed.scheme in {"data", "blob", "about"} or parsed.hostname in {
        "127.0.0.1",
        "localhost",
    }


def ask(page: Page, question: str) -> None:
    page.locator("#rag-question textarea").fill(question)
    page.locator("#rag-ask").click()


# ---------------------------------------------------------------- tests


def test_streamed_answer_with_clickable_citation(
    page: Page, page_engine: Any, page_questions: Questions
) -> None:
    gate = getattr(page_engine, "gate", None)  # the fake holds its Final until we saw the stream
    if gate is not None:
        gate.clear()
    try:
        ask(page, page_questions.answerable)
        if gate is not None:
            pending = page.locator("#rag-transcript .rag-a.pending")
            expect(pending).to_contain_text("Ada Lovelace wrote it")
            expect(page.locator("#rag-sources details.src")).to_have_count(0)
    finally:
        if gate is not None:
            gate.set()

    answer = page.locator("#rag-transcript .rag-a.answered").last
    expect(answer).to_be_visible()
    badge = answer.locator("a.cite").first
    expect(badge).to_be_visible()
    n = badge.get_attribute("data-n")
    source = page.locator(f"#rag-sources details.src[data-n='{n}']")
    mark = source.locator("mark")
    expect(mark).to_be_hidden()  # collapsed until its citation is clicked

    badge.click()
    expect(source).to_have_attribute("open", "")
    expect(mark).to_be_visible()
    expect(mark).not_to_be_empty()

    answer.locator("details.searched summary").click()
    expect(answer.locator(".question-used")).to_be_visible()
    if isinstance(page_engine, FakeEngine):
        expect(mark).to_have_text(SPAN)
        expect(source).to_contain_text("<script>")  # document HTML is shown, not run
        expect(source).to_contain_text("${document.title} {{value}}")  # nor templated
    if os.environ.get("RAG_SCREENSHOT") == "1":
        page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_follow_up_uses_history_and_new_chat_clears(
    page: Page, page_engine: Any, page_questions: Questions
) -> None:
    if not isinstance(page_engine, FakeEngine):
        pytest.skip("scripted follow-up needs the fake engine")
    ask(page, page_questions.answerable)
    expect(page.locator("#rag-transcript .rag-a.answered")).to_have_count(1)
    ask(page, "And when?")
    answers = page.locator("#rag-transcript .rag-a.answered")
    expect(answers).to_have_count(2)  # "when" alone is refused; the history makes it answerable
    expect(answers.last.locator(".question-used")).to_have_text(
        f"{page_questions.answerable} / And when?", use_inner_text=False
    )
    page.locator("#rag-new").click()
    expect(page.locator("#rag-transcript .rag-turn")).to_have_count(0)
    expect(page.locator("#rag-transcript .rag-empty")).to_be_visible()


def test_two_browser_sessions_do_not_share_a_conversation(
    browser: Browser, page_url: str, page_questions: Questions
) -> None:
    contexts = [browser.new_context() for _ in range(2)]
    try:
        pages = [c.new_page() for c in contexts]
        for p in pages:
            p.goto(page_url)
        ask(pages[0], page_questions.answerable)
        ask(pages[1], page_questions.unanswerable)
        expect(pages[0].locator("#rag-transcript .rag-a.answered")).to_have_count(1)
        expect(pages[1].locator("#rag-transcript .rag-a.refused")).to_have_count(1)
        for p, other in (
            (pages[0], page_questions.unanswerable),
            (pages[1], page_questions.answerable),
        ):
            expect(p.locator("#rag-transcript .rag-turn")).to_have_count(1)
            expect(p.locator("#rag-transcript")).not_to_contain_text(other)
    finally:
        for c in contexts:
            c.close()


def test_refusal_is_styled_and_has_no_sources(page: Page, page_questions: Questions) -> None:
    ask(page, page_questions.unanswerable)
    refusal = page.locator("#rag-transcript .rag-a.refused")
    expect(refusal).to_be_visible()
    expect(refusal).to_contain_text("Not in your documents")
    expect(refusal.locator("a.cite")).to_have_count(0)
    expect(page.locator("#rag-sources details.src")).to_have_count(0)


def _document_count(page: Page) -> int:
    match = re.search(r"Documents:\s*(\d+)", page.locator("#rag-status").inner_text())
    assert match, "status line shows the number of documents"
    return int(match.group(1))


def test_upload_lists_document_and_delete_removes_it(
    page: Page, tmp_path: Path, page_settings: Settings
) -> None:
    doc = tmp_path / "moon landing notes.txt"
    doc.write_text("Apollo 11 landed on the Moon on 20 July 1969.\n", encoding="utf-8")
    page.get_by_role("tab", name="Documents").click()
    rows = page.locator(DOC_ROWS)
    moon = rows.filter(has_text=re.compile("moon", re.IGNORECASE))
    expect(moon).to_have_count(0)
    before = _document_count(page)

    page.locator("#rag-upload input[type=file]").set_input_files(str(doc))
    expect(page.locator("#rag-docs-message")).to_contain_text("Added 1")
    expect(moon).to_have_count(1)
    expect(page.locator("#rag-status")).to_contain_text(f"Documents: {before + 1}")
    assert (page_settings.data_dir / "uploads" / "moon_landing_notes.txt").is_file()

    moon.locator("[role=gridcell]").first.click()  # selecting a row fills in its id
    expect(page.locator("#rag-doc-id textarea, #rag-doc-id input")).not_to_have_value("")
    page.locator("#rag-delete").click()
    expect(page.locator("#rag-docs-message")).to_contain_text("Deleted")
    expect(moon).to_have_count(0)
    expect(page.locator("#rag-status")).to_contain_text(f"Documents: {before}")
    assert not (page_settings.data_dir / "uploads" / "moon_landing_notes.txt").exists()


def test_bad_uploads_change_nothing(page: Page, tmp_path: Path, page_settings: Settings) -> None:
    page.get_by_role("tab", name="Documents").click()
    before = _document_count(page)
    rows = page.locator(DOC_ROWS)
    expect(rows).to_have_count(before)
    upload = page.locator("#rag-upload input[type=file]")

    exe = tmp_path / "payload.exe"
    exe.write_bytes(b"MZ")
    upload.set_input_files(str(exe))  # refused by the page before it is sent
    expect(page.get_by_text("Invalid file type").first).to_be_visible()

    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"\xff\xfe\x00 not a pdf")
    upload.set_input_files(str(broken))  # accepted by the page, refused by the knowledge base
    expect(page.locator("#rag-docs-message")).to_contain_text("broken.pdf")
    expect(rows).to_have_count(before)
    expect(page.locator("#rag-status")).to_contain_text(f"Documents: {before}")
    assert not (page_settings.data_dir / "uploads" / "broken.pdf").exists()


def test_ask_api_with_gradio_client(page_url: str, page_questions: Questions) -> None:
    from gradio_client import Client

    client = Client(page_url, verbose=False)
    result = client.predict(page_questions.answerable, [], api_name="/ask")
    assert set(result) >= {"question", "answer", "refused", "citations", "question_used"}
    assert result["question"] == page_questions.answerable
    assert not result["refused"] and result["citations"]
    refused = client.predict(page_questions.unanswerable, api_name="/ask")
    assert refused["refused"] and refused["citations"] == []
