"""rag/web without a browser: rendering, the chat handler, uploads, the ask API, serving."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rag import events
from rag.config import Settings
from rag.events import AnswerResult, Citation, Final, Passage, Searching, Sources, Token, Turn
from rag.ingest import SUPPORTED_SUFFIXES
from rag.knowledge_base import DocumentInfo, FileError, IngestReport
from rag.web import build_app, serve
from rag.web.app import status_line
from rag.web.chat import (
    answer_turn,
    ask_json,
    chat,
    conversation_markdown,
    new_chat,
    parse_history,
    work_queue,
)
from rag.web.render import (
    highlight_span,
    render_all_sources,
    render_answer_text,
    render_sources,
    render_transcript,
    render_turn,
    source_location,
)
from rag.web.state import ChatTurn, Pending, Session, Sessions
from rag.web.uploads import (
    UploadError,
    delete_document,
    document_rows,
    ingest_uploads,
    sanitize_filename,
    validate_uploads,
)
from rag.web.viewer import RENDER_SCALE, open_citation

# ---------------------------------------------------------------- a scripted engine

CHUNK = "Intro. The <b>bridge</b> opened in 1932 & cost ${money}. Outro."
SPAN_START = CHUNK.index("The")
SPAN_END = CHUNK.index(" & cost")
ADDED = "2026-03-04T05:06:07+00:00"


def citation(n: int = 1, **overrides: Any) -> Citation:
    fields: dict[str, Any] = {
        "n": n,
        "doc_id": "bridge",
        "title": "Bridge <i>history</i>",
        "text": CHUNK,
        "start": 100 + SPAN_START,
        "end": 100 + SPAN_END,
        "published": "2001-02-03",
        "chunk_start": 100,
        "chunk_end": 100 + len(CHUNK),
    }
    fields.update(overrides)
    return Citation(**fields)


def answer_result(question: str, refused: bool = False, **overrides: Any) -> AnswerResult:
    fields: dict[str, Any] = {
        "answer": "Not in the documents." if refused else "It opened in 1932 [1].",
        "refused": refused,
        "citations": [] if refused else [citation()],
        "question": question,
        "question_used": f"standalone: {question}",
    }
    fields.update(overrides)
    return AnswerResult(**fields)


class FakeKB:
    """The knowledge base's page-facing methods, returning its real record types."""

    def __init__(self, fail_names: Sequence[str] = ()) -> None:
        self.docs: dict[str, DocumentInfo] = {}
        self.fail_names = set(fail_names)
        self.ingested: list[list[Path]] = []
        self.texts: dict[str, str] = {}

    def ingest(self, paths: list[Path], progress: Any = None) -> IngestReport:
        self.ingested.append(list(paths))
        report = IngestReport()
        for i, path in enumerate(paths):
            if progress is not None:
                progress(i, len(paths), path.stem)
            if path.name in self.fail_names:
                # the real knowledge base names the file in its message
                report.errors.append(FileError(str(path), f"{path.name}: could not parse"))
                continue
            known = path.stem in self.docs
            self.docs[path.stem] = DocumentInfo(
                path.stem, path.stem, 2, "hash", path=str(path), size=3 * 1024, added=ADDED
            )
            (report.updated if known else report.added).append(path.stem)
            report.chunks += 2
        return report

    def documents(self) -> list[DocumentInfo]:
        return list(self.docs.values())

    def document_text(self, doc_id: str) -> str | None:
        return self.texts.get(doc_id)

    def delete(self, doc_id: str) -> bool:
        return self.docs.pop(doc_id, None) is not None


class FakeEngine:
    """Yields Searching, Sources, Token..., Final; refuses questions containing "unknown"."""

    def __init__(self, error: str | None = None, fail: bool = False) -> None:
        self.kb = FakeKB()
        self.error = error
        self.fail = fail
        self.calls: list[tuple[str, list[Turn]]] = []
        self.lock = threading.Lock()

    def status(self) -> dict[str, Any]:
        return {"llm": "fake", "embed_model": "fake-embed", "documents": 0, "chunks": 0}

    def answer(self, question: str, history: Sequence[Turn]) -> Iterator[Any]:
        with self.lock:
            self.calls.append((question, list(history)))
        yield Searching(f"standalone: {question}")
        yield Sources([Passage(1, "bridge#0", "bridge", "Bridge", CHUNK, 100, 160)])
        if self.fail:
            raise ConnectionError("endpoint down")
        refused = "unknown" in question
        result = answer_result(question, refused)
        if self.error:
            result = answer_result(question, answer="", citations=[], error=self.error)
        for word in result.answer.split(" "):
            yield Token(word + " ")
        yield Final(result)


@pytest.fixture(autouse=True)
def _no_auth_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAG_AUTH", raising=False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", max_upload_mb=1, max_upload_files=3)


# ---------------------------------------------------------------- rendering


def test_citation_markers_become_badges_linking_to_their_passage() -> None:
    html = render_answer_text("Opened [1], cost [2, 3]; see [9].", cited=[1, 2, 3], turn=4)
    assert html.count('class="cite"') == 3
    assert 'href="#src-4-1"' in html and 'href="#src-4-3"' in html
    assert "[9]" in html and "#src-4-9" not in html  # uncited numbers stay plain text


@pytest.mark.parametrize("mark", ["[1-3]", "[1 and 2 and 3]", "[1; 2; 3]", "[1\u20133]"])
def test_ranges_and_lists_are_badges_too(mark: str) -> None:
    html = render_answer_text(f"Opened {mark}.", cited=[1, 2, 3], turn=0)
    assert [f'href="#src-0-{n}"' in html for n in (1, 2, 3)] == [True] * 3
    assert html.count('class="cite"') == 3 and mark not in html
    partly = render_answer_text(f"Opened {mark}.", cited=[1, 2], turn=0)
    assert 'class="cite"' not in partly  # a mark naming an uncited passage stays text


def test_answer_text_is_escaped() -> None:
    html = render_answer_text("<img src=x onerror=alert(1)> [1]", cited=[1], turn=0)
    assert "<img" not in html and "&lt;img" in html


def test_span_is_highlighted_and_document_html_escaped() -> None:
    html = highlight_span(citation())
    assert "<mark>The &lt;b&gt;bridge&lt;/b&gt; opened in 1932</mark>" in html
    assert "<b>" not in html and "&amp; cost" in html
    assert "${" not in html  # template syntax from documents is neutralised too


def test_span_outside_the_chunk_is_not_marked() -> None:
    html = highlight_span(citation(start=5000, end=5010))
    assert "<mark>" not in html and "bridge" in html


def test_sources_panel_lists_cited_passages_once() -> None:
    result = answer_result("q", citations=[citation(2), citation(1), citation(2)])
    html = render_sources(result, turn=0)
    assert html.count('<details class="src"') == 2
    assert html.index('id="src-0-1"') < html.index('id="src-0-2"')
    assert "Bridge &lt;i&gt;history&lt;/i&gt;" in html and "<i>" not in html
    assert "2001-02-03" in html


def test_refusal_is_labelled_and_has_no_sources() -> None:
    turn = ChatTurn("q", result=answer_result("q", refused=True), question_used="q")
    transcript = render_transcript([turn])
    assert 'class="rag-a refused"' in transcript and "Not in your documents" in transcript
    assert 'class="cite"' not in transcript
    assert '<details class="src"' not in render_sources(turn.result, 0)


def test_refusal_hides_sources_even_if_citations_slipped_through() -> None:
    result = answer_result("q", refused=True, citations=[citation()])
    assert '<details class="src"' not in render_sources(result, 0)


def test_searched_for_line_is_collapsed() -> None:
    html = render_transcript([ChatTurn("q", result=answer_result("q"), question_used="q <x>")])
    assert '<details class="searched">' in html and "q &lt;x&gt;" in html


# ---------------------------------------------------------------- chat handler


def test_chat_streams_tokens_then_renders_final_answer() -> None:
    engine = FakeEngine()
    outputs = list(chat(engine, "When did it open?", []))
    streamed = [o[0] for o in outputs if "pending" in o[0]]
    assert any("It opened" in t and "cite" not in t for t in streamed)
    transcript, sources, turns, textbox = outputs[-1]
    assert 'class="cite"' in transcript and "<mark>" in sources and textbox == ""
    assert [t.question for t in turns] == ["When did it open?"]
    assert "standalone: When did it open?" in transcript


def test_follow_up_passes_history_as_turns() -> None:
    engine = FakeEngine()
    turns = list(chat(engine, "first", []))[-1][2]
    list(chat(engine, "second", turns))
    assert engine.calls[1] == ("second", [Turn("first", "It opened in 1932 [1].")])


def test_llm_error_is_shown_and_kept_out_of_history() -> None:
    engine = FakeEngine(error="Connection refused to http://user:pw@llm:8080")
    transcript, sources, turns, _ = list(chat(engine, "q", []))[-1]
    assert 'class="rag-a error"' in transcript and "language model endpoint failed" in transcript
    assert "user:pw" not in transcript and '<details class="src"' not in sources
    list(chat(engine, "again", turns))
    assert engine.calls[-1][1] == []


def test_engine_exception_keeps_the_page_up() -> None:
    transcript, _, turns, _ = list(chat(FakeEngine(fail=True), "q", []))[-1]
    assert "endpoint down" in transcript and turns[0].error


def test_empty_question_does_nothing() -> None:
    engine = FakeEngine()
    *_, (_, _, turns, _) = chat(engine, "   ", [])
    assert turns == [] and engine.calls == []


def test_new_chat_clears_the_session() -> None:
    _, sources, turns, _ = new_chat()
    assert turns == [] and sources == ""


def test_ten_concurrent_sessions_keep_separate_histories() -> None:
    engine = FakeEngine()
    start = threading.Barrier(10)
    finals: dict[int, list[ChatTurn]] = {}

    def session(i: int) -> None:
        turns: list[ChatTurn] = []  # what gr.State holds for this browser session
        start.wait()
        for j in range(3):
            turns = list(chat(engine, f"s{i}-q{j}", turns))[-1][2]
        finals[i] = turns

    threads = [threading.Thread(target=session, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(finals) == 10
    for i, turns in finals.items():
        assert [t.question for t in turns] == [f"s{i}-q{j}" for j in range(3)]
    for question, history in engine.calls:
        session_id = question.split("-")[0]
        assert all(h.question.startswith(f"{session_id}-") for h in history)
    assert len(engine.calls) == 30


# ---------------------------------------------------------------- ask API


def test_ask_returns_the_result_json() -> None:
    engine = FakeEngine()
    result = ask_json(engine, "When?", [{"question": "Which bridge?", "answer": "That one."}])
    assert result == answer_result("When?").to_json()
    assert engine.calls[0][1] == [Turn("Which bridge?", "That one.")]
    json.dumps(result)


def test_ask_refusal_json_has_no_citations() -> None:
    result = ask_json(FakeEngine(), "unknown thing")
    assert result["refused"] is True and result["citations"] == []


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        (None, []),
        ([], []),
        ([["q", "a"]], [Turn("q", "a")]),
        ('[{"question": "q", "answer": "a"}]', [Turn("q", "a")]),
    ],
)
def test_parse_history(history: Any, expected: list[Turn]) -> None:
    assert parse_history(history) == expected


@pytest.mark.parametrize("history", [[["only one"]], [{"q": 1}], "not json", {"a": 1}])
def test_parse_history_rejects_malformed(history: Any) -> None:
    with pytest.raises(ValueError):
        parse_history(history)


def test_build_app_exposes_only_the_ask_api(settings: Settings) -> None:
    app = build_app(FakeEngine(), settings)
    public = {fn.api_name for fn in app.fns.values() if fn.api_visibility == "public"}
    assert public == {"ask"}


# ---------------------------------------------------------------- serving


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.org"])
def test_public_bind_without_auth_is_refused_before_anything_is_launched(host: str) -> None:
    with pytest.raises(ValueError, match="RAG_AUTH"):
        serve(FakeEngine(), Settings(host=host))


@pytest.mark.parametrize("api_key", [None, "k-123456"])
def test_page_login_and_api_key_guard_one_port(settings: Settings, api_key: str | None) -> None:
    import socket

    import httpx

    from rag.web.app import launch

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    configured = Settings(
        data_dir=settings.data_dir, port=port, auth="ada:secret-pw", api_key=api_key
    )
    app, url = launch(FakeEngine(), configured)
    try:
        assert httpx.get(f"{url}config").status_code == 401  # the page wants its login
        login = httpx.post(f"{url}login", data={"username": "ada", "password": "secret-pw"})
        assert login.status_code == 200
        models = httpx.get(f"{url}v1/models", headers={"Authorization": "Bearer k-123456"})
        if api_key:  # the API has its own key and ignores the page's login
            assert models.status_code == 200 and models.json()["data"][0]["id"] == "rag"
            assert httpx.get(f"{url}v1/models", cookies=login.cookies).status_code == 401
        else:  # a password on the page and no key: the API refuses every call
            assert models.status_code == 403
            assert "RAG_API_KEY" in models.json()["error"]["message"]
    finally:
        app.close()


class StatusEngine(FakeEngine):
    def __init__(self, llm: str) -> None:
        super().__init__()
        self.llm = llm

    def status(self) -> dict[str, Any]:
        return {"llm": self.llm, "embed_model": "m", "documents": 2, "chunks": 9}


def test_status_line_never_shows_secrets() -> None:
    leaky = StatusEngine("gpt @ https://bob:sk-123@api.example/v1 key sk-123")
    line = status_line(leaky, Settings(llm_api_key="sk-123"))
    assert "sk-123" not in line and "bob" not in line
    assert "**Documents:** 2" in line and "**Chunks:** 9" in line


# ---------------------------------------------------------------- uploads and documents


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\evil.txt", "evil.txt"),
        ("/abs/path/notes.md", "notes.md"),
        ("my report (final).PDF", "my_report_final.pdf"),
        (".hidden.txt", "hidden.txt"),
        ("résumé.docx", "résumé.docx"),
        ("文件.txt", "文件.txt"),  # a name in another script keeps its name and its type
        ("line\nbreak.md", "line_break.md"),
        ("a;rm -rf $HOME`.html", "a_rm_-rf_HOME.html"),
        ("", "upload"),
        ("...", "upload"),
    ],
)
def test_sanitize_filename(name: str, safe: str) -> None:
    assert sanitize_filename(name) == safe


def test_sanitize_filename_bounds_length() -> None:
    assert len(sanitize_filename("x" * 500 + ".txt")) <= 160
    assert len(sanitize_filename("文" * 500 + ".txt").encode()) <= 160


def _file(path: Path, size: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


@pytest.mark.parametrize(
    ("names", "sizes", "problem"),
    [
        (["a.exe"], [10], "unsupported type"),
        (["a.txt"], [2 * 1024 * 1024], "larger than 1 MB"),
        (["a.txt", "b.txt", "c.txt", "d.txt"], [10] * 4, "Too many files"),
    ],
)
def test_bad_uploads_are_refused_and_change_nothing(
    tmp_path: Path, settings: Settings, names: list[str], sizes: list[int], problem: str
) -> None:
    paths = [_file(tmp_path / "in" / n, s) for n, s in zip(names, sizes, strict=True)]
    with pytest.raises(UploadError, match=problem):
        validate_uploads(paths, settings)
    engine = FakeEngine()
    message = ingest_uploads(engine, paths, settings)
    assert problem in message
    assert engine.kb.ingested == [] and not (settings.data_dir / "uploads").exists()


def test_upload_is_copied_under_a_safe_name_then_ingested(
    tmp_path: Path, settings: Settings
) -> None:
    engine = FakeEngine()
    source = _file(tmp_path / "in" / "My Notes.md")
    message = ingest_uploads(engine, [source], settings)
    copy = settings.data_dir / "uploads" / "My_Notes.md"
    assert engine.kb.ingested == [[copy]] and copy.is_file()
    assert message == "Added 1, updated 0, unchanged 0 (2 chunks)."
    assert document_rows(engine) == [
        ["My_Notes.md", "md", "3.0 KB", 2, "2026-03-04 05:06", "My_Notes"]
    ]
    again = ingest_uploads(engine, [source], settings)
    assert again == "Added 0, updated 1, unchanged 0 (2 chunks)."


def test_every_type_the_knowledge_base_reads_can_be_uploaded(
    tmp_path: Path, settings: Settings
) -> None:
    settings.max_upload_files = len(SUPPORTED_SUFFIXES)
    paths = [_file(tmp_path / "in" / f"doc{suffix}") for suffix in SUPPORTED_SUFFIXES]
    assert [name for _, name in validate_uploads(paths, settings)] == [p.name for p in paths]
    assert {".markdown", ".htm"} <= set(SUPPORTED_SUFFIXES)


def test_same_names_in_one_upload_do_not_overwrite_each_other(
    tmp_path: Path, settings: Settings
) -> None:
    engine = FakeEngine()
    paths = [_file(tmp_path / "a" / "n.txt"), _file(tmp_path / "b" / "n.txt")]
    ingest_uploads(engine, paths, settings)
    assert [p.name for p in engine.kb.ingested[0]] == ["n.txt", "n-1.txt"]


def test_file_the_kb_cannot_read_is_reported_and_not_kept(
    tmp_path: Path, settings: Settings
) -> None:
    engine = FakeEngine()
    engine.kb.fail_names = {"broken.pdf"}
    paths = [_file(tmp_path / "in" / "broken.pdf"), _file(tmp_path / "in" / "ok.txt")]
    message = ingest_uploads(engine, paths, settings)
    assert message == (
        "Added 1, updated 0, unchanged 0 (2 chunks).\n"
        "1 of 2 files could not be added:\n- broken.pdf: could not parse"
    )
    assert sorted(p.name for p in (settings.data_dir / "uploads").iterdir()) == ["ok.txt"]


def test_failed_reupload_restores_the_previous_copy(tmp_path: Path, settings: Settings) -> None:
    engine = FakeEngine()
    ingest_uploads(engine, [_file(tmp_path / "v1" / "doc.pdf", 5)], settings)
    engine.kb.fail_names = {"doc.pdf"}
    ingest_uploads(engine, [_file(tmp_path / "v2" / "doc.pdf", 7)], settings)
    assert (settings.data_dir / "uploads" / "doc.pdf").read_bytes() == b"x" * 5


def test_delete_removes_the_document_and_its_upload(tmp_path: Path, settings: Settings) -> None:
    engine = FakeEngine()
    ingest_uploads(engine, [_file(tmp_path / "in" / "gone.txt")], settings)
    assert "Deleted gone" in delete_document(engine, " gone ", settings)
    assert document_rows(engine) == []
    assert not (settings.data_dir / "uploads" / "gone.txt").exists()
    assert "No document" in delete_document(engine, "gone", settings)
    assert "Enter a document id" in delete_document(engine, "", settings)


def test_delete_leaves_files_outside_uploads_alone(tmp_path: Path, settings: Settings) -> None:
    engine = FakeEngine()
    outside = _file(tmp_path / "library" / "keep.txt")
    engine.kb.docs["keep"] = DocumentInfo("keep", "Keep", 1, "hash", path=str(outside))
    delete_document(engine, "keep", settings)
    assert outside.is_file()


def test_abandoned_answer_closes_the_engine_stream() -> None:
    closed = threading.Event()

    class Streaming(FakeEngine):
        def answer(self, question: str, history: Sequence[Turn]) -> Iterator[Any]:
            try:
                yield Searching(question)
                yield Token("never shown")
            finally:
                closed.set()

    handler = chat(Streaming(), "q", [])
    next(handler)  # the pending turn
    next(handler)  # after Searching
    handler.close()  # the browser went away
    assert closed.is_set()


# ---------------------------------------------------------------- issue #19


def _done(question: str, **overrides: Any) -> ChatTurn:
    return ChatTurn(question, result=answer_result(question, **overrides), question_used=question)


def test_every_answer_keeps_its_own_sources_and_only_the_latest_is_shown() -> None:
    turns = [_done("a"), _done("b", citations=[citation(1), citation(2, doc_id="other")])]
    html = render_all_sources(turns)
    assert 'id="src-0-1"' in html and 'id="src-1-2"' in html
    assert '<section class="turn-sources" data-turn="0" hidden>' in html
    assert '<section class="turn-sources" data-turn="1">' in html
    assert 'href="#src-0-1"' in render_transcript(turns)  # badges of turn 0 link to turn 0's


def test_a_source_says_where_it_points_and_how_well_it_supports() -> None:
    c = citation(page=7, section="2.4 Library Notes", support=0.42)
    assert source_location(c, "libtasn1.pdf") == "libtasn1.pdf · p. 7 · 2.4 Library Notes"
    assert source_location(citation()) == "Bridge <i>history</i>"  # no file, page or section
    html = render_sources(answer_result("q", citations=[c]), 0, {"bridge": "libtasn1.pdf"})
    assert "libtasn1.pdf · p. 7 · 2.4 Library Notes" in html
    assert '<span class="support low">support 0.42</span>' in html
    assert "support" not in render_sources(answer_result("q"), 0)


def test_kept_sentences_with_low_support_are_marked() -> None:
    sentences = [
        events.SentenceVerdict("It opened in 1932.", [1], 0.9, True),
        events.SentenceVerdict("It cost a lot.", [1], 0.2, True),
        events.SentenceVerdict("It was dropped.", [1], 0.1, False),
    ]
    html = render_answer_text("It opened in 1932 [1]. It cost a lot [1].", [1], 0, sentences)
    assert html.count('class="weak"') == 1
    weak = html[html.index('class="weak"') :]
    assert "It cost a lot" in weak and "1932" not in weak


def test_pending_turn_shows_what_the_engine_is_doing() -> None:
    engine = FakeEngine()
    statuses = [t.status for t in answer_turn(engine, "When?", [])]
    assert statuses[:3] == ["Searching…", "Searching…", "Reading 1 passage from 1 document…"]
    assert "Answering…" in statuses and statuses[-1] == ""
    html = render_turn(ChatTurn("q", status="Reading 3 passages from 2 documents…"), 0)
    assert '<div class="rag-working">Reading 3 passages from 2 documents…</div>' in html


def test_conversations_survive_the_browser_store_round_trip() -> None:
    session = Session()
    conversation = session.start("When did the bridge open?")
    session.put_turn(conversation, None, _done("When did the bridge open?"))
    session.put_turn(conversation, None, ChatTurn("stopped one", answer="It", stopped=True))
    session.put_turn(conversation, None, ChatTurn("still streaming", answer="So"))
    stored = json.loads(json.dumps(session.to_store()))
    again = Session(stored)
    restored = again.current()
    assert restored is not None and restored.title == "When did the bridge open?"
    questions = ["When did the bridge open?", "stopped one", "still streaming"]
    assert [t.question for t in restored.turns] == questions
    assert restored.turns[0].result == conversation.turns[0].result
    assert restored.turns[1].stopped and not restored.turns[1].in_history
    assert restored.turns[2].stopped and restored.turns[2].answer == "So"  # a reload stopped it
    assert Session({"conversations": [{"no": "id"}], "active": "x"}).conversations == {}


def test_rename_and_delete_conversations() -> None:
    session = Session()
    first = session.start("one")
    session.select(None)
    second = session.start("two")
    assert next(c.id for c in session.ordered()) == second.id
    assert session.rename(first.id, "  Renamed   chat ") and first.title == "Renamed chat"
    assert not session.rename(first.id, "   ")
    assert session.delete(second.id) and session.active is None
    assert list(session.conversations) == [first.id]


def test_questions_queued_while_answering_are_answered_in_order_with_history() -> None:
    engine = FakeEngine()
    session = Session()
    conversation = session.start("first")
    assert not session.enqueue(Pending(conversation.id, "first"))
    worker = work_queue(engine, session)
    next(worker)  # the first answer is running
    assert session.enqueue(Pending(conversation.id, "second"))  # told it waits
    assert session.queued(conversation.id) == ["second"]
    assert list(work_queue(engine, session)) == []  # a second worker leaves it to the first
    list(worker)
    assert [t.question for t in conversation.turns] == ["first", "second"]
    assert engine.calls[1] == ("second", [Turn("first", "It opened in 1932 [1].")])
    assert not session.running and session.queued(conversation.id) == []


def test_regenerate_answers_a_turn_again_with_the_history_before_it() -> None:
    engine = FakeEngine()
    session = Session()
    conversation = session.start("first")
    for q in ("first", "second"):
        session.enqueue(Pending(conversation.id, q))
    list(work_queue(engine, session))
    session.enqueue(Pending(conversation.id, "first", replace=0))
    list(work_queue(engine, session))
    assert [t.question for t in conversation.turns] == ["first", "second"]
    assert engine.calls[-1] == ("first", [])


def test_stop_closes_the_engine_stream_and_keeps_the_partial_answer() -> None:
    closed = threading.Event()

    class Endless(FakeEngine):
        def answer(self, question: str, history: Sequence[Turn]) -> Iterator[Any]:
            try:
                yield Searching(question)
                for i in range(100_000):
                    yield Token(f"{i} ")
            finally:
                closed.set()

    session = Session()
    conversation = session.start("count")
    session.enqueue(Pending(conversation.id, "count"))
    worker = work_queue(Endless(), session)

    def shown() -> str:
        return conversation.turns[0].answer if conversation.turns else ""

    while "2 " not in shown():
        next(worker)
    session.stop.set()  # the user presses Stop mid-stream
    said = shown()
    list(worker)
    turn = conversation.turns[0]
    assert closed.wait(timeout=10) and turn.stopped
    assert turn.answer == said and said.startswith("0 1 2 ")  # kept, nothing after the Stop
    assert "Stopped" in render_turn(turn, 0) and not turn.in_history


def test_stop_is_seen_while_the_engine_waits_for_the_model() -> None:
    release, closed = threading.Event(), threading.Event()

    class Waiting(FakeEngine):
        def answer(self, question: str, history: Sequence[Turn]) -> Iterator[Any]:
            try:
                yield Searching(question)
                release.wait(timeout=30)  # the model has not sent its first token yet
                yield Token("late ")
                yield Token("never ")
            finally:
                closed.set()

    session = Session()
    conversation = session.start("q")
    session.enqueue(Pending(conversation.id, "q"))
    session.enqueue(Pending(conversation.id, "next"))
    worker = work_queue(Waiting(), session)
    next(worker)  # the pending turn
    next(worker)  # after Searching: the engine now waits
    session.stop.set()
    next(worker)  # the stopped turn, at once
    turn = conversation.turns[0]
    assert turn.stopped and turn.answer == "" and not closed.is_set()
    release.set()  # the model answers at last: its stream is closed, not read on
    assert closed.wait(timeout=10)
    list(worker)  # the queued question is still answered after the stop
    assert conversation.turns[0].answer == "" and conversation.turns[1].question == "next"


def test_export_is_markdown_with_each_answers_citations() -> None:
    session = Session()
    conversation = session.start("When?")
    cite = citation(page=3, section="History")
    turn = replace(_done("When?", citations=[cite]), files={"bridge": "bridge.pdf"})
    session.put_turn(conversation, None, turn)
    session.put_turn(conversation, None, _done("unknown?", refused=True))
    text = conversation_markdown(conversation)
    assert text.startswith("# When?\n\n## When?\n\nIt opened in 1932 [1].\n")
    assert "- [1] Bridge <i>history</i> (bridge.pdf · p. 3 · History): “The <b>bridge</b>" in text
    assert "*Not in your documents.*" in text


def _pdf(path: Path, pages: int) -> Path:
    from PIL import Image

    images = [Image.new("RGB", (200 + 10 * n, 300), "white") for n in range(pages)]
    images[0].save(path, save_all=True, append_images=images[1:])
    return path


def test_viewer_renders_the_cited_pdf_page(tmp_path: Path) -> None:
    kb = FakeKB()
    pdf = _pdf(tmp_path / "manual.pdf", 3)
    kb.docs["bridge"] = DocumentInfo("bridge", "Bridge", 1, "h", path=str(pdf))
    shown = open_citation(kb, citation(page=2))
    assert (shown.page, shown.pages, shown.error) == (2, 3, None)
    assert shown.image.width == 210 * RENDER_SCALE  # the second page (its own width)
    assert "<mark>" in shown.html and shown.heading == "manual.pdf · p. 2"
    assert open_citation(kb, citation(page=2), page=9).page == 3  # clamped to the document


def test_viewer_shows_text_documents_with_the_span_marked_and_only_known_documents() -> None:
    kb = FakeKB()
    kb.docs["bridge"] = DocumentInfo("bridge", "Bridge", 1, "h", path="/x/bridge.md")
    kb.texts["bridge"] = "x" * 100 + CHUNK
    shown = open_citation(kb, citation())
    assert shown.image is None and '<mark id="rag-viewer-mark">The &lt;b&gt;bridge' in shown.html
    gone = open_citation(kb, citation(doc_id="../../etc/passwd"))
    assert gone.error and gone.image is None and gone.html == ""


def test_status_line_shows_no_addresses() -> None:
    line = status_line(StatusEngine("qwen at http://127.0.0.1:8766/v1"), Settings())
    assert "127.0.0.1" not in line and "http" not in line and "**LLM:** qwen ·" in line


def test_upload_reports_progress_per_file(tmp_path: Path, settings: Settings) -> None:
    seen: list[tuple[int, int, str]] = []
    paths = [_file(tmp_path / "in" / "a.txt"), _file(tmp_path / "in" / "b.txt")]
    ingest_uploads(FakeEngine(), paths, settings, progress=lambda *a: seen.append(a))
    assert seen == [(0, 2, "a"), (1, 2, "b")]


def test_another_users_conversations_are_not_loaded() -> None:
    mine = Session(owner="ann")
    mine.start("private question")
    stored = mine.to_store()
    assert Session(stored, owner="ann").conversations.keys() == mine.conversations.keys()
    assert Session(stored, owner="bob").conversations == {}
    assert Session(stored).conversations == {}  # nor by a page without a login


def test_pages_that_never_closed_are_forgotten_beyond_the_limit() -> None:
    sessions = Sessions(limit=2)
    first = sessions.open("a", None)
    sessions.open("b", None)
    sessions.open("c", None)
    assert len(sessions) == 2 and first.stop.is_set()
    assert sessions.open("a", None) is not first  # a new session, from the browser's copy
