"""The chat handler and the `ask` API: thin shells over `engine.answer()`'s event stream."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, Protocol

from rag.config import Settings
from rag.events import Final, Searching, Sources, Token, Turn
from rag.security import redact
from rag.web.render import EMPTY_CHAT, error_message, render_sources, render_transcript
from rag.web.state import ChatTurn

log = logging.getLogger(__name__)


class EngineLike(Protocol):
    """What the page needs of `rag.answer.Engine`."""

    kb: Any

    def answer(self, question: str, history: Sequence[Turn]) -> Iterator[Any]: ...

    def status(self) -> dict[str, Any]: ...


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
