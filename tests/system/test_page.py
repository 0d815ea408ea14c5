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
    SentenceVerdict,
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
                "lovelace",
                "Notes on the Analytical Engine",
                3,
                "hash",
                published="1843-10-01",
                path="/srv/library/lovelace-notes.txt",
                size=2048,
                added="2026-01-02T03:04:05+00:00",
            )
        }
        self.texts = {"lovelace": CHUNK}
        self.lock = threading.Lock()

    def document_text(self, doc_id: str) -> str | None:
        with self.lock:
            return self.texts.get(doc_id)

    def ingest(self, paths: Sequence[Path], progress: Any = None) -> IngestReport:
        report = IngestReport()
        with self.lock:
            for path in paths:
                try:
                    text = Path(path).read_text(encoding="utf-8")
                except UnicodeDecodeError:
                    report.errors.append(
                        FileError(str(path), f"{Path(path).name}: not a readable document")
                    )
                    continue
                doc_id = hashlib.sha1(str(path).encode()).hexdigest()[:12]
                (report.updated if doc_id in self.docs else report.added).append(doc_id)
                self.docs[doc_id] = DocumentInfo(
                    doc_id,
                    Path(path).stem,
                    1 + len(text) // 500,
                    "hash",
                    path=str(path),
                    size=Path(path).stat().st_size,
                    added="2026-05-06T07:08:09+00:00",
                )
                self.texts[doc_id] = text
                report.chunks += self.docs[doc_id].chunks
                if progress is not None:
                    progress(len(report.added) + len(report.updated), len(paths), doc_id)
        return report

    def documents(self) -> list[DocumentInfo]:
        with self.lock:
            return list(self.docs.values())

    def delete(self, doc_id: str) -> bool:
        with self.lock:
            return self.docs.pop(doc_id, None) is not None


MANUAL_CHUNK = "Library notes: the decoder accepts DER and BER encodings of every type."
MANUAL_SPAN = "the decoder accepts DER and BER encodings"
PDF_PAGES = 3


def make_pdf(path: Path, pages: int = PDF_PAGES) -> Path:
    """A PDF whose pages say which page they are (images: no fonts needed)."""
    from PIL import Image, ImageDraw

    images = []
    for n in range(1, pages + 1):
        image = Image.new("RGB", (612, 792), "white")
        draw = ImageDraw.Draw(image)
        draw.rectangle((40, 40, 572, 140), outline="black", width=4)
        draw.text((60, 70), f"Library manual - page {n} of {pages}", fill="black", font_size=32)
        images.append(image)
    images[0].save(path, save_all=True, append_images=images[1:])
    return path


class FakeEngine:
    """Answers anything mentioning Lovelace from one passage, anything mentioning the manual
    from page 2 of a PDF; streams "forever" until it is closed; refuses everything else.

    `gate`, when cleared, holds the Final event back so a test can see the streamed tokens;
    `stream_closed` is set when a stream was closed before it ended.
    """

    def __init__(self) -> None:
        self.kb = FakeKB()
        self.gate = threading.Event()
        self.gate.set()
        self.stream_closed = threading.Event()
        self.questions: list[str] = []

    def add_manual(self, path: Path) -> None:
        self.kb.docs["manual"] = DocumentInfo(
            "manual",
            "Library manual",
            2,
            "hash",
            path=str(path),
            size=path.stat().st_size,
            added="2026-02-03T04:05:06+00:00",
        )

    def status(self) -> dict[str, Any]:
        docs = self.kb.documents()
        return {
            "llm": "fake-llm @ http://127.0.0.1:9/v1",
            "embed_model": "fake-embed",
            "documents": len(docs),
            "chunks": sum(d.chunks for d in docs),
        }

    def answer(self, question: str, history: Sequence[Turn]) -> Iterator[Any]:
        self.questions.append(question)
        used = f"{history[-1].question} / {question}" if history else question
        yield Searching(used)
        if "forever" in used.lower():
            yield from self._forever()
            return
        if "manual" in used.lower():
            yield from self._manual(question, used)
            return
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

    def _forever(self) -> Iterator[Any]:
        yield Sources([])
        try:
            for i in range(100_000):
                yield Token(f"{i} ")
                threading.Event().wait(0.02)  # paces the fake model, not the test
        except GeneratorExit:
            self.stream_closed.set()
            raise

    def _manual(self, question: str, used: str) -> Iterator[Any]:
        passage = Passage(
            1,
            "manual#3",
            "manual",
            "Library manual",
            MANUAL_CHUNK,
            500,
            500 + len(MANUAL_CHUNK),
            page=2,
            section="2.4 Library Notes",
        )
        yield Sources([passage])
        text = "The decoder accepts DER and BER [1]. It is also the fastest one [1]."
        for word in text.split(" "):
            yield Token(word + " ")
        start = 500 + MANUAL_CHUNK.index(MANUAL_SPAN)
        citation = Citation(
            1,
            "manual",
            passage.title,
            MANUAL_CHUNK,
            start,
            start + len(MANUAL_SPAN),
            None,
            500,
            500 + len(MANUAL_CHUNK),
            page=2,
            section="2.4 Library Notes",
            support=0.91,
        )
        sentences = [
            SentenceVerdict("The decoder accepts DER and BER.", [1], 0.91, True),
            SentenceVerdict("It is also the fastest one.", [1], 0.2, True),
        ]
        yield Final(
            AnswerResult(text, False, [citation], question, used, [passage], sentences=sentences)
        )


# ---------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Questions:
    answerable: str
    unanswerable: str


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> FakeEngine:
    engine = FakeEngine()
    engine.add_manual(make_pdf(tmp_path_factory.mktemp("pdf") / "libmanual.pdf"))
    return engine


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
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, permissions=["clipboard-read", "clipboard-write"]
    )
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

    expect(moon.locator("[role=gridcell]").first).to_have_text("moon_landing_notes.txt")
    expect(moon).to_contain_text("txt")
    moon.locator("[role=gridcell]").first.click()  # selecting a row fills in its id
    expect(page.locator("#rag-doc-id textarea, #rag-doc-id input")).not_to_have_value("")
    page.locator("#rag-delete").click()
    confirm = page.locator("#rag-confirm")
    expect(confirm).to_contain_text("Delete moon_landing_notes.txt")
    expect(moon).to_have_count(1)  # nothing is deleted before it is confirmed
    page.locator("#rag-confirm-delete").click()
    expect(page.locator("#rag-docs-message")).to_contain_text("Deleted")
    expect(confirm).to_be_hidden()
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
    upload.set_input_files(str(exe))  # refused before anything is stored
    message = page.locator("#rag-docs-message")
    expect(message).to_contain_text("payload.exe: unsupported type")

    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"\xff\xfe\x00 not a pdf")
    upload.set_input_files(str(broken))  # accepted by the page, refused by the knowledge base
    expect(message).to_contain_text("broken.pdf")
    expect(message).not_to_contain_text("payload.exe")  # no stale message beside the new one
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


# ---------------------------------------------------------------- issue #19: the daily page


def _fake(page_engine: Any) -> FakeEngine:
    if not isinstance(page_engine, FakeEngine):
        pytest.skip("scripted behaviour needs the fake engine")
    return page_engine


def test_an_old_answers_badge_opens_its_own_passage(page: Page, page_engine: Any) -> None:
    _fake(page_engine)
    ask(page, "Who wrote the first algorithm, Lovelace?")
    expect(page.locator("#rag-transcript .rag-a.answered")).to_have_count(1)
    ask(page, "Tell me about the manual")
    expect(page.locator("#rag-transcript .rag-a.answered")).to_have_count(2)
    first, second = (page.locator(f"#rag-sources section[data-turn='{i}']") for i in (0, 1))
    expect(first).to_be_hidden()  # the panel shows the latest answer's sources
    expect(second).to_contain_text("libmanual.pdf · p. 2 · 2.4 Library Notes")
    expect(second).to_contain_text("support 0.91")
    weak = page.locator("#rag-transcript .rag-turn[data-turn='1'] .weak")
    expect(weak).to_have_count(1)  # the kept sentence with low support is marked
    expect(weak).to_contain_text("fastest")

    page.locator("#rag-transcript .rag-turn[data-turn='0'] a.cite").first.click()
    expect(first).to_be_visible()
    expect(second).to_be_hidden()
    old = page.locator("#src-0-1")
    expect(old).to_have_attribute("open", "")
    expect(old.locator("mark")).to_have_text(SPAN)
    expect(old).to_contain_text("lovelace-notes.txt")  # its file's name, not the server path
    expect(page.locator("#rag-sources")).not_to_contain_text("/srv/library")

    page.locator("#rag-transcript .rag-turn[data-turn='1'] .act-sources").click()
    expect(second).to_be_visible()
    expect(first).to_be_hidden()

    copy = page.locator("#rag-transcript .rag-turn[data-turn='0'] .act-copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "Ada Lovelace wrote it in 1843 [1]."


def test_regenerate_answers_that_question_again_in_place(page: Page, page_engine: Any) -> None:
    engine = _fake(page_engine)
    ask(page, "Who wrote it, Lovelace?")
    expect(page.locator("#rag-transcript .rag-a.answered")).to_have_count(1)
    asked = len(engine.questions)
    engine.gate.clear()
    try:
        page.locator("#rag-transcript .rag-turn[data-turn='0'] .act-regen").click()
        expect(
            page.locator("#rag-transcript .rag-turn[data-turn='0'] .rag-a.pending")
        ).to_be_visible()
        expect(page.locator("#rag-stop")).to_be_visible()
    finally:
        engine.gate.set()
    expect(page.locator("#rag-transcript .rag-a.answered")).to_have_count(1)
    expect(page.locator("#rag-ask")).to_be_visible()
    expect(page.locator("#rag-transcript .rag-turn")).to_have_count(1)
    assert engine.questions[asked:] == ["Who wrote it, Lovelace?"]


def test_status_shows_steps_then_tokens_and_header_has_no_model_address(
    page: Page, page_engine: Any
) -> None:
    engine = _fake(page_engine)
    expect(page.locator("#rag-status")).not_to_contain_text("127.0.0.1:9")
    expect(page.locator("#rag-status a")).to_have_count(0)
    engine.gate.clear()
    try:
        ask(page, "Lovelace?")
        working = page.locator("#rag-transcript .rag-a.pending")
        expect(working.locator(".rag-working")).to_have_text("Answering…")
        expect(working).to_contain_text("Ada Lovelace wrote it")
    finally:
        engine.gate.set()
    expect(page.locator("#rag-transcript .rag-working")).to_have_count(0)


def test_a_question_sent_mid_stream_is_queued_and_answered_after(
    page: Page, page_engine: Any
) -> None:
    engine = _fake(page_engine)
    engine.gate.clear()
    try:
        ask(page, "First, Lovelace?")
        expect(page.locator("#rag-transcript .rag-a.pending")).to_contain_text("Ada Lovelace")
        expect(page.locator("#rag-stop")).to_be_visible()
        expect(page.locator("#rag-ask")).to_be_hidden()
        box = page.locator("#rag-question textarea")
        expect(box).to_be_editable()  # the box stays usable while it answers
        box.fill("Second, Lovelace again?")
        box.press("Enter")
        expect(page.locator("#rag-note")).to_contain_text("Queued")
        queued = page.locator("#rag-transcript .rag-turn.queued")
        expect(queued).to_contain_text("Second, Lovelace again?")
        expect(page.locator("#rag-transcript .rag-a.answered")).to_have_count(0)
    finally:
        engine.gate.set()
    answers = page.locator("#rag-transcript .rag-a.answered")
    expect(answers).to_have_count(2)
    expect(page.locator("#rag-transcript .rag-turn[data-turn='1'] .rag-q")).to_have_text(
        "Second, Lovelace again?"
    )
    expect(queued).to_have_count(0)
    expect(page.locator("#rag-ask")).to_be_visible()
    expect(page.locator("#rag-stop")).to_be_hidden()


def test_stop_cancels_the_stream_and_keeps_what_was_said(page: Page, page_engine: Any) -> None:
    engine = _fake(page_engine)
    engine.stream_closed.clear()
    ask(page, "Count forever")
    pending = page.locator("#rag-transcript .rag-a.pending")
    expect(pending).to_contain_text("3 4 5")
    page.locator("#rag-stop").click()
    stopped = page.locator("#rag-transcript .rag-a.stopped")
    expect(stopped).to_contain_text("Stopped")
    expect(stopped).to_contain_text("3 4 5")
    expect(page.locator("#rag-ask")).to_be_visible()
    assert engine.stream_closed.wait(timeout=TIMEOUT_MS / 1000), "the engine stream was closed"
    ask(page, "Lovelace after the stop?")  # the page answers again
    expect(page.locator("#rag-transcript .rag-a.answered")).to_have_count(1)


def test_reload_keeps_conversations_which_can_be_renamed_exported_and_deleted(
    page: Page, page_engine: Any
) -> None:
    _fake(page_engine)
    ask(page, "Who wrote it, Lovelace?")
    expect(page.locator("#rag-transcript .rag-a.answered")).to_have_count(1)
    page.locator("#rag-new").click()
    expect(page.locator("#rag-transcript .rag-turn")).to_have_count(0)
    ask(page, "What does the manual say?")
    expect(page.locator("#rag-transcript .rag-a.answered")).to_have_count(1)

    page.reload()
    conversations = page.locator("#rag-conversations label")
    expect(conversations).to_have_count(2)
    expect(page.locator("#rag-transcript .rag-q")).to_have_text("What does the manual say?")
    page.locator("#rag-transcript a.cite").first.click()  # sources came back with it
    expect(page.locator("#src-0-1 mark")).to_have_text(MANUAL_SPAN)

    conversations.filter(has_text="Who wrote it, Lovelace?").click()
    expect(page.locator("#rag-transcript .rag-q")).to_have_text("Who wrote it, Lovelace?")
    title = page.locator("#rag-title input, #rag-title textarea")
    expect(title).to_have_value("Who wrote it, Lovelace?")
    title.fill("Lovelace chat")
    page.locator("#rag-rename").click()
    expect(conversations.filter(has_text="Lovelace chat")).to_have_count(1)

    page.locator("#rag-export-btn").click()
    link = page.locator("#rag-export a[download], #rag-export a").first
    expect(link).to_be_visible()
    body = page.request.get(link.get_attribute("href")).text()
    assert body.startswith("# Lovelace chat")
    assert "Ada Lovelace wrote it in 1843 [1]." in body
    assert f"[1] Notes on the Analytical Engine (lovelace-notes.txt): “{SPAN}”" in body

    page.reload()
    expect(conversations.filter(has_text="Lovelace chat")).to_have_count(1)
    conversations.filter(has_text="Lovelace chat").click()
    page.locator("#rag-delete-chat").click()
    expect(conversations).to_have_count(1)
    expect(page.locator("#rag-transcript .rag-empty")).to_be_visible()
    page.reload()
    expect(conversations).to_have_count(1)


def test_a_pdf_citation_opens_the_document_at_its_page(page: Page, page_engine: Any) -> None:
    _fake(page_engine)
    ask(page, "What does the manual say about encodings?")
    page.locator("#rag-transcript .rag-a.answered a.cite").first.click()
    page.locator("#src-0-1 button.open-doc").click()
    viewer = page.locator("#rag-viewer")
    expect(viewer).to_be_visible()
    expect(page.locator("#rag-viewer-pages")).to_have_text("Page 2 of 3")
    expect(page.locator("#rag-viewer-title")).to_contain_text("libmanual.pdf · p. 2")
    image = page.locator("#rag-viewer-page img")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.naturalWidth") > 600  # the page, rendered
    expect(page.locator("#rag-viewer-text mark")).to_have_text(MANUAL_SPAN)
    page.locator("#rag-viewer-next").click()
    expect(page.locator("#rag-viewer-pages")).to_have_text("Page 3 of 3")
    page.locator("#rag-viewer-close").click()
    expect(viewer).to_be_hidden()


def test_a_text_citation_opens_the_document_with_its_span_marked(
    page: Page, page_engine: Any
) -> None:
    _fake(page_engine)
    ask(page, "Lovelace?")
    page.locator("#rag-transcript .rag-a.answered a.cite").first.click()
    page.locator("#src-0-1 button.open-doc").click()
    expect(page.locator("#rag-viewer-text #rag-viewer-mark")).to_have_text(SPAN)
    expect(page.locator("#rag-viewer-page")).to_be_hidden()  # no page image for text


def test_a_too_long_question_is_capped_with_a_visible_count(
    page: Page, page_settings: Settings, page_engine: Any
) -> None:
    engine = _fake(page_engine)
    limit = page_settings.max_question_chars
    asked = len(engine.questions)
    box = page.locator("#rag-question textarea")
    box.fill("Lovelace " * limit)
    expect(box).to_have_js_property("value", ("Lovelace " * limit)[:limit])
    expect(page.locator("#rag-question-count")).to_contain_text(f"{limit} / {limit}")
    assert len(engine.questions) == asked


SCREENSHOTS = SCREENSHOT.parent / "screenshots"


@pytest.mark.skipif(os.environ.get("RAG_SCREENSHOT") != "1", reason="RAG_SCREENSHOT=1 only")
def test_screenshots_of_each_state(browser: Browser, page_url: str, page_engine: Any) -> None:
    """Rewrites docs/screenshots/*.png (shown in docs/PAGE.md), light and dark."""
    engine = _fake(page_engine)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def shoot(page: Page, name: str) -> None:
        page.mouse.move(0, 0)
        expect(page.locator(".flash")).to_have_count(0)  # the highlight outline faded
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))

    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.goto(page_url)
    ask(page, "Who wrote the first algorithm, Lovelace?")
    expect(page.locator("#rag-transcript .rag-a.answered")).to_have_count(1)
    page.locator("#rag-new").click()
    ask(page, "What does the manual say about encodings?")
    expect(page.locator("#rag-transcript .rag-a.answered")).to_have_count(1)
    ask(page, "And who wrote the notes, Lovelace?")
    expect(page.locator("#rag-transcript .rag-a.answered")).to_have_count(2)
    page.locator("#rag-transcript .rag-turn[data-turn='0'] a.cite").first.click()
    shoot(page, "conversation")

    page.locator("#src-0-1 button.open-doc").click()
    expect(page.locator("#rag-viewer-pages")).to_have_text("Page 2 of 3")
    expect(page.locator("#rag-viewer-page img")).to_be_visible()
    shoot(page, "pdf-viewer")
    page.locator("#rag-viewer-close").click()

    engine.gate.clear()
    try:
        ask(page, "One more on Lovelace?")
        expect(page.locator("#rag-stop")).to_be_visible()
        expect(page.locator("#rag-transcript .rag-a.pending")).to_contain_text("1843")
        page.locator("#rag-question textarea").fill("And her notes?")
        page.locator("#rag-question textarea").press("Enter")
        expect(page.locator("#rag-transcript .rag-turn.queued")).to_have_count(1)
        shoot(page, "mid-stream")
    finally:
        engine.gate.set()
    expect(page.locator("#rag-transcript .rag-turn.queued")).to_have_count(0)
    expect(page.locator("#rag-ask")).to_be_visible()

    title = page.locator("#rag-title input, #rag-title textarea")
    title.fill("Manual and Lovelace notes")
    page.locator("#rag-rename").click()
    expect(page.locator("#rag-conversations")).to_contain_text("Manual and Lovelace notes")
    page.locator("#rag-export-btn").click()
    expect(page.locator("#rag-export a").first).to_be_visible()
    shoot(page, "sidebar")

    page.get_by_role("tab", name="Documents").click()
    page.locator(DOC_ROWS).filter(has_text="libmanual.pdf").locator("[role=gridcell]").first.click()
    page.locator("#rag-delete").click()
    expect(page.locator("#rag-confirm")).to_be_visible()
    shoot(page, "documents")
    page.locator("#rag-cancel-delete").click()
    context.close()

    for name, options, url in (
        ("phone", {"viewport": {"width": 390, "height": 844}, "is_mobile": True}, page_url),
        ("dark", {"viewport": {"width": 1366, "height": 900}}, f"{page_url}?__theme=dark"),
    ):
        context = browser.new_context(**options)
        page = context.new_page()
        page.goto(url)
        ask(page, "What does the manual say about encodings?")
        answer = page.locator("#rag-transcript .rag-a.answered")
        expect(answer).to_have_count(1)
        answer.locator("a.cite").first.click()
        shoot(page, name)
        context.close()
