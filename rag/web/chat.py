"""The chat handler and the `ask` API: thin shells over `engine.answer()`'s event stream."""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from rag.config import Settings
from rag.events import Final, Searching, Sources, Token, Turn
from rag.security import redact
from rag.web.render import (
    EMPTY_CHAT,
    cited,
    error_message,
    render_sources,
    render_transcript,
    source_location,
)
from rag.web.state import ChatTurn, Conversation, Session, stopped

log = logging.getLogger(__name__)


class EngineLike(Protocol):
    """What the page needs of `rag.answer.Engine`."""

    kb: Any

    def answer(self, question: str, history: Sequence[Turn]) -> Iterator[Any]: ...

    def status(self) -> dict[str, Any]: ...


def history_of(turns: Sequence[ChatTurn]) -> list[Turn]:
    """The engine's view of a conversation: completed exchanges only."""
    return [Turn(t.question, t.answer) for t in turns if t.in_history]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _apply(event: object, turn: ChatTurn, settings: Settings | None) -> ChatTurn:
    """The page's view of the current turn after one engine event."""
    if isinstance(event, Searching):
        return replace(turn, question_used=event.question_used, status="Searching…")
    if isinstance(event, Sources):
        docs = len({p.doc_id for p in event.passages})
        status = (
            f"Reading {_plural(len(event.passages), 'passage')} from {_plural(docs, 'document')}…"
            if event.passages
            else "No relevant passages found."
        )
        return replace(turn, status=status)
    if isinstance(event, Token):
        return replace(turn, answer=turn.answer + event.text, status="Answering…")
    if isinstance(event, Final):
        result = event.result
        error = error_message(result.error, settings) if result.error else None
        return replace(
            turn,
            answer=result.answer,
            result=result,
            question_used=result.question_used or turn.question_used,
            error=error,
            status="",
        )
    return turn


def _close(stream: object) -> None:
    close = getattr(stream, "close", None)
    if callable(close):
        close()


def file_names(engine: EngineLike) -> dict[str, str]:
    """doc_id -> file name, from the knowledge base's public listing."""
    try:
        return {d.doc_id: d.file_name for d in engine.kb.documents()}
    except Exception as exc:  # the names are a nicety; the answer must still show
        log.warning("could not list documents: %s", exc)
        return {}


STOP_POLL_SECONDS = 0.1  # how soon Stop is seen while the engine waits (for a first token)


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_END = object()


def _pumped(stream: Iterator[Any], stop: threading.Event) -> Iterator[Any]:
    """The stream's events, read by a thread of their own so that Stop ends this iterator at
    once, even while the engine is blocked waiting for the model. That thread closes the
    engine's stream (and so the model's) as soon as the engine hands back control."""
    events: queue.Queue[Any] = queue.Queue()

    def pump() -> None:
        try:
            for event in stream:
                if stop.is_set():
                    break
                events.put(event)
        except Exception as exc:
            events.put(_Failed(exc))
        finally:
            _close(stream)
            events.put(_END)

    threading.Thread(target=pump, name="rag-answer", daemon=True).start()
    while not stop.is_set():
        try:
            event = events.get(timeout=STOP_POLL_SECONDS)
        except queue.Empty:
            continue
        if event is _END:
            return
        if isinstance(event, _Failed):
            raise event.error
        if not stop.is_set():
            yield event


def answer_turn(
    engine: EngineLike,
    question: str,
    history: Sequence[Turn],
    settings: Settings | None = None,
    stop: threading.Event | None = None,
) -> Iterator[ChatTurn]:
    """The turn after each engine event; the last one is done (answered, refused, failed or
    stopped). Stopping, or abandoning this iterator, closes the engine's stream, which closes
    the model's."""
    turn = ChatTurn(question=question, status="Searching…")
    yield turn
    stream = None
    try:
        stream = engine.answer(question, history)
        events = stream if stop is None else _pumped(stream, stop)
        for event in events:
            turn = _apply(event, turn, settings)
            yield turn
        if stop is not None and stop.is_set() and not turn.done:
            turn = stopped(turn)
    except Exception as exc:  # the engine failed; the page must stay up
        log.warning("answer failed: %s", redact(repr(exc), settings))
        turn = replace(turn, error=f"Could not answer: {redact(str(exc), settings)}", status="")
    finally:
        if stop is None:
            _close(stream)  # the browser may have gone away: stop the LLM stream now, not at GC
        elif not turn.done:
            stop.set()  # abandoned: the pump closes the stream
    if not turn.done:
        turn = replace(turn, error="The engine ended without an answer.", status="")
    if turn.result is not None and cited(turn.result):
        turn = replace(turn, files=file_names(engine))
    yield turn


ChatOutput = tuple[str, str, list[ChatTurn], str]


def chat(
    engine: EngineLike,
    question: str,
    turns: Sequence[ChatTurn] | None,
    settings: Settings | None = None,
) -> Iterator[ChatOutput]:
    """One answer over a list of turns: yields (transcript, sources, turns, cleared textbox)."""
    past = list(turns or [])
    question = (question or "").strip()
    if not question:
        last = past[-1] if past else None
        yield render_transcript(past), render_sources(last and last.result, len(past) - 1), past, ""
        return
    index, turn = len(past), ChatTurn(question)
    for turn in answer_turn(engine, question, history_of(past), settings):
        shown = [*past, turn]
        yield render_transcript(shown), render_sources(turn.result, index, turn.files), past, ""
    done = [*past, turn]
    yield render_transcript(done), render_sources(turn.result, index, turn.files), done, ""


def new_chat() -> ChatOutput:
    """Forget the conversation on screen."""
    return EMPTY_CHAT, "", [], ""


def work_queue(
    engine: EngineLike, session: Session, settings: Settings | None = None
) -> Iterator[Conversation | None]:
    """Answers this page's queued questions one at a time, in order; yields the conversation
    that changed after every event. Returns at once when another call already works the
    queue: that one will reach the question too."""
    if not session.claim():
        return
    while (item := session.next_pending()) is not None:
        with session.lock:
            conversation = session.conversations.get(item.conversation)
        if conversation is None:  # deleted while the question waited
            continue
        turns = conversation.turns
        end = item.replace if item.replace is not None else len(turns)
        history = history_of(turns[:end])
        index = None
        stop = session.stop  # this answer's (next_pending made it)
        for turn in answer_turn(engine, item.question, history, settings, stop):
            if index is None:
                index = session.put_turn(conversation, item.replace, turn)
            else:
                session.set_turn(conversation, index, turn)
            yield conversation


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


def conversation_markdown(conversation: Conversation) -> str:
    """A conversation as Markdown: each question, its answer with [n] marks, and under it the
    passages those marks cite, with where they are."""
    lines = [f"# {conversation.title}", ""]
    for turn in conversation.turns:
        lines += [f"## {turn.question}", ""]
        if turn.error:
            lines += [f"*Error: {turn.error}*", ""]
            continue
        result = turn.result
        answer = result.answer if result is not None else turn.answer
        if turn.stopped:
            answer += " *(stopped)*"
        elif result is not None and result.refused:
            answer = f"*Not in your documents.* {answer}"
        lines += [answer, ""]
        citations = cited(result) if result is not None else []
        if citations:
            lines += ["Sources:", ""]
            for c in citations:
                where = source_location(c, turn.files.get(c.doc_id))
                quote = " ".join(c.span.split()) or " ".join(c.text.split())
                lines.append(f"- [{c.n}] {c.title} ({where}): “{quote}”")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
