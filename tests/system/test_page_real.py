"""The page in headless Chromium against the REAL engine: MiniLM, Chroma, BM25 and the shipped
Qwen2.5-Coder-1.5B, with the seed article ingested.

Reuses test_page.py's browser and server fixtures and overrides `page_engine`, `page_settings`
and `page_questions`. Everything is module-scoped so the model loads once (~45 s warm-up on a
small CPU); each answer then takes 10-20 s. Waits are event-based only (Playwright `expect`),
with generous timeouts because the CPU may be shared. `RAG_SCREENSHOT=1` rewrites
docs/screenshot-answer.png with a cited answer and its passage open.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_page as base
from playwright.sync_api import Browser, Page, expect

from rag.answer import Engine
from rag.compose import build_engine
from rag.config import Settings
from rag.llm.local import local_gguf

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "seeds" / "000_cff91d0424af9357.txt"
ANSWER_MS = int(os.environ.get("RAG_ANSWER_TIMEOUT_MS", "60000"))  # one real answer, shared CPU

# The browser, the served page and a fresh page per test come from test_page.py.
browser = base.browser
page_url = base.page_url
page = base.page


@pytest.fixture(scope="module")
def page_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # The GGUF already assembled and verified by `make model` (1.1 GB): not once per data dir.
    return Settings(
        data_dir=tmp_path_factory.mktemp("page-real"),
        host="127.0.0.1",
        port=base._free_port(),
        local_llm_gguf=local_gguf(Settings()),
    )


@pytest.fixture(scope="module")
def page_engine(page_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    seeds = tmp_path_factory.mktemp("seed")
    shutil.copy(SEED, seeds / SEED.name)
    engine = build_engine(page_settings)
    report = engine.kb.ingest([seeds])
    assert not report.errors and engine.kb.stats()["documents"] == 1
    engine.warm_up()  # load the model before the page is served, as `rag serve` does
    return engine


@pytest.fixture(scope="module")
def page_questions() -> base.Questions:
    return base.Questions("who led Russia's delegation?", "Who led Ukraine's delegation?")


@pytest.fixture(scope="module")
def chat_page(browser: Browser, page_url: str) -> Iterator[Page]:
    """One chat session shared by the ordered chat tests below (an answer, then New chat)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(base.TIMEOUT_MS)
    chat = context.new_page()
    external: list[str] = []
    chat.on("request", lambda r: external.append(r.url) if not base._is_local(r.url) else None)
    chat.goto(page_url)
    expect(chat.locator("#rag-status")).to_contain_text("Documents: 1")
    yield chat
    context.close()
    assert external == [], "the page must work offline"


# Records every streamed (pending) state of the answer, so the test sees the stream however
# fast it is, without polling or sleeping.
RECORD_STREAM_JS = """() => {
  window.ragStream = [];
  new MutationObserver(() => {
    for (const el of document.querySelectorAll('#rag-transcript .rag-a.pending .answer-text')) {
      window.ragStream.push(el.textContent);
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def test_streamed_answer_cites_medinsky_and_opens_the_passage(
    chat_page: Page, page_questions: base.Questions
) -> None:
    chat_page.evaluate(RECORD_STREAM_JS)
    base.ask(chat_page, page_questions.answerable)
    answer = chat_page.locator("#rag-transcript .rag-a.answered").last
    expect(answer).to_contain_text("Medinsky", timeout=ANSWER_MS)
    streamed = [t.strip() for t in chat_page.evaluate("window.ragStream")]
    assert any(t and t != "…" for t in streamed), f"no streamed tokens were shown: {streamed}"

    badge = answer.locator("a.cite").first  # whichever passage number states it
    expect(badge).to_be_visible()
    number = badge.get_attribute("data-n")
    source = chat_page.locator(f"#rag-sources details.src[data-n='{number}']")
    mark = source.locator(".passage mark")
    expect(mark).to_be_hidden()  # collapsed until its badge is clicked
    badge.click()
    expect(source).to_have_attribute("open", "")
    expect(mark).to_be_visible()
    expect(mark).to_contain_text("Medinsky")
    if os.environ.get("RAG_SCREENSHOT") == "1":
        expect(source).not_to_have_class(re.compile(r"\bflash\b"))  # the highlight outline faded
        chat_page.screenshot(path=str(base.SCREENSHOT))


def test_new_chat_then_unanswerable_question_is_refused_without_sources(
    chat_page: Page, page_questions: base.Questions
) -> None:
    chat_page.locator("#rag-new").click()
    expect(chat_page.locator("#rag-transcript .rag-turn")).to_have_count(0)
    expect(chat_page.locator("#rag-sources details.src")).to_have_count(0)

    base.ask(chat_page, page_questions.unanswerable)
    refusal = chat_page.locator("#rag-transcript .rag-a.refused")
    expect(refusal).to_be_visible(timeout=ANSWER_MS)
    expect(refusal).to_contain_text("Not in your documents")
    expect(refusal.locator("a.cite")).to_have_count(0)
    expect(chat_page.locator("#rag-sources")).to_contain_text("No sources.")
    expect(chat_page.locator("#rag-sources details.src")).to_have_count(0)
    expect(chat_page.locator("#rag-transcript .rag-turn")).to_have_count(1)


def test_uploaded_document_is_answered_from_then_deleted(
    page: Page, tmp_path: Path, page_settings: Settings
) -> None:
    doc = tmp_path / "zorblat festival.txt"
    doc.write_text(
        "The Zorblat festival in Tallinn was founded in 1987 by Mirja Kask.\n", encoding="utf-8"
    )
    stored = page_settings.data_dir / "uploads" / "zorblat_festival.txt"
    page.get_by_role("tab", name="Documents").click()
    zorblat = page.locator(base.DOC_ROWS).filter(has_text="Zorblat")
    expect(page.locator(base.DOC_ROWS)).to_have_count(1)  # the seed article
    expect(zorblat).to_have_count(0)

    page.locator("#rag-upload input[type=file]").set_input_files(str(doc))
    expect(page.locator("#rag-docs-message")).to_contain_text("Added 1", timeout=ANSWER_MS)
    expect(zorblat).to_have_count(1)
    expect(page.locator("#rag-status")).to_contain_text("Documents: 2")
    assert stored.is_file()

    page.get_by_role("tab", name="Chat").click()
    base.ask(page, "Who founded the Zorblat festival?")
    answer = page.locator("#rag-transcript .rag-a.answered").last
    expect(answer).to_contain_text("Kask", timeout=ANSWER_MS)
    expect(answer.locator("a.cite").first).to_be_visible()
    n = answer.locator("a.cite").first.get_attribute("data-n")
    expect(page.locator(f"#rag-sources details.src[data-n='{n}']")).to_contain_text("Mirja Kask")

    page.get_by_role("tab", name="Documents").click()
    zorblat.locator("[role=gridcell]").first.click()  # selecting a row fills in its id
    expect(page.locator("#rag-doc-id textarea, #rag-doc-id input")).not_to_have_value("")
    page.locator("#rag-delete").click()
    expect(page.locator("#rag-confirm")).to_contain_text("zorblat_festival.txt")
    page.locator("#rag-confirm-delete").click()
    expect(page.locator("#rag-docs-message")).to_contain_text("Deleted")
    expect(zorblat).to_have_count(0)
    expect(page.locator(base.DOC_ROWS)).to_have_count(1)
    expect(page.locator("#rag-status")).to_contain_text("Documents: 1")
    assert not stored.exists()


def test_ask_api_answers_with_citations(page_url: str, page_questions: base.Questions) -> None:
    from gradio_client import Client

    client = Client(page_url, verbose=False)
    result: dict[str, Any] = client.predict(page_questions.answerable, [], api_name="/ask")
    assert result["question"] == page_questions.answerable
    assert "Medinsky" in result["answer"], result
    assert not result["refused"] and result["error"] is None
    assert any("Medinsky" in c["text"] for c in result["citations"]), result["citations"]
