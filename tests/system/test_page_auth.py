"""With RAG_AUTH set, what the page serves of a document (the viewer's rendered page) reaches
the logged-in user only. Reuses test_page.py's scripted engine and browser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import test_page as base
from playwright.sync_api import Browser, expect

from rag.config import Settings
from rag.security import page_auth
from rag.web import build_app

pytestmark = pytest.mark.browser

browser = base.browser
USER, PASSWORD = "reader", "correct-horse-battery"


@pytest.fixture(scope="module")
def auth_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("page-auth"),
        host="127.0.0.1",
        port=base._free_port(),
        auth=f"{USER}:{PASSWORD}",
    )
    engine = base.FakeEngine()
    engine.add_manual(base.make_pdf(tmp_path_factory.mktemp("pdf") / "libmanual.pdf"))
    app = build_app(engine, settings)
    app.queue()
    _, url, _ = app.launch(
        server_name=settings.host,
        server_port=settings.port,
        auth=page_auth(settings),
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
    )
    yield url
    app.close()


def test_the_rendered_page_of_a_cited_pdf_needs_the_login(browser: Browser, auth_url: str) -> None:
    context = browser.new_context()
    stranger = browser.new_context()
    try:
        page = context.new_page()
        page.goto(auth_url)
        page.get_by_label("username").fill(USER)
        page.get_by_label("password").fill(PASSWORD)
        page.get_by_role("button", name="Login").click()
        base.ask(page, "What does the manual say?")
        page.locator("#rag-transcript .rag-a.answered a.cite").first.click()
        page.locator("#src-0-1 button.open-doc").click()
        expect(page.locator("#rag-viewer-pages")).to_have_text("Page 2 of 3")
        image = page.locator("#rag-viewer-page img")
        expect(image).to_be_visible()
        src = image.get_attribute("src")
        assert src and src.startswith(auth_url.rstrip("/"))
        assert context.request.get(src).status == 200
        assert stranger.request.get(src).status in {401, 403}
        page.reload()  # the logged-in user's conversation is theirs to see again
        expect(page.locator("#rag-transcript .rag-q")).to_have_text("What does the manual say?")
    finally:
        context.close()
        stranger.close()
