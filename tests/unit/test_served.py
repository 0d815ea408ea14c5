"""`rag ask` through a running `rag serve`: the client finds a server only when it searches the
same store with the same settings, and turns its stream back into the engine's own events.
A real HTTP server (uvicorn on 127.0.0.1) over the real engine with a scripted LLM."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import test_answer
from fakes import FakeLLM

from rag.answer import Engine
from rag.events import Final, Searching, Token, Turn
from rag.server.client import ServedEngine

QUESTION = "Who was Russia's lead negotiator?"
DRAFT = "Russia's delegation was led by Vladimir Medinsky [2]."

kb = test_answer.kb  # the seed document over real Chroma, bag-of-words embeddings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served_engine(kb, settings, llm=None) -> Iterator[tuple[Engine, object]]:
    """The engine behind /v1 on a free port, and the settings a `rag ask` beside it reads."""
    import uvicorn
    from fastapi import FastAPI

    from rag.server import api_routes

    settings = settings.model_copy(update={"port": free_port()})
    engine = Engine(settings, kb, llm or FakeLLM(DRAFT, DRAFT, DRAFT))
    app = FastAPI(routes=api_routes(engine, settings))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    ready, deadline = threading.Event(), time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        ready.wait(0.01)  # polls for the server's start, however long it takes
    assert server.started, "the test server did not start"
    try:
        yield engine, settings
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def serving(kb, settings) -> Iterator[tuple[Engine, object]]:
    with served_engine(kb, settings) as served:
        yield served


def run(events) -> tuple[list[object], str]:
    events = list(events)
    return events, "".join(e.text for e in events if isinstance(e, Token))


def test_a_server_with_the_same_settings_answers_as_the_engine_would(serving):
    engine, settings = serving
    served = ServedEngine.find(settings)
    assert served is not None
    through, drafted = run(served.answer(QUESTION, []))
    here, streamed = run(engine.answer(QUESTION, []))
    assert isinstance(through[0], Searching) and isinstance(through[-1], Final)
    assert drafted == streamed and "Medinsky" in drafted
    remote, local = through[-1].result.to_json(), here[-1].result.to_json()
    assert remote["citations"] and remote["timings"]
    del remote["timings"], local["timings"]  # measured anew on each run
    assert remote == local


def test_a_follow_up_carries_its_history(serving):
    _, settings = serving
    served = ServedEngine.find(settings)
    history = [Turn("Who led Russia's delegation?", "Vladimir Medinsky [1].")]
    events, _ = run(served.answer("And who was his counterpart?", history))
    assert isinstance(events[-1], Final) and events[-1].result.question_used


def test_other_settings_or_no_server_answer_here(serving):
    _, settings = serving
    for other in ({"top_k": settings.top_k + 1}, {"data_dir": settings.data_dir / "x"}):
        assert ServedEngine.find(settings.model_copy(update=other)) is None
    assert ServedEngine.find(settings.model_copy(update={"port": free_port()})) is None


def test_a_server_that_refuses_the_key_is_not_used(kb, settings):
    from pydantic import SecretStr

    keyed = settings.model_copy(update={"api_key": SecretStr("k-123456")})
    with served_engine(kb, keyed) as (_, served_settings):
        assert ServedEngine.find(served_settings) is not None  # the same key
        no_key = served_settings.model_copy(update={"api_key": None})
        assert no_key.answer_fingerprint() == served_settings.answer_fingerprint()
        assert ServedEngine.find(no_key) is None  # 401: answer here


def test_a_question_the_server_refuses_is_an_error_result(serving):
    _, settings = serving
    served = ServedEngine.find(settings)
    (final,) = served.answer("why " * 400, [])
    assert final.result.error and final.result.error_code == "question_too_long"


def test_an_answer_that_breaks_on_the_server_is_an_error_result(kb, settings):
    broken = FakeLLM(RuntimeError("socket closed"))
    with served_engine(kb, settings, broken) as (_, served_settings):
        events = list(ServedEngine.find(served_settings).answer(QUESTION, []))
    final = events[-1]
    assert isinstance(final, Final) and final.result.error and not final.result.answer
