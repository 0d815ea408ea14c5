"""What the page keeps of its conversations.

Each browser keeps its conversations in its own localStorage (`gr.BrowserState`, as JSON);
while a page is open, the server holds them in a `Session` keyed by Gradio's session hash, the
one place every handler of that page reads and writes. That keeps a streaming answer, a
question queued behind it and a rename in the sidebar from overwriting each other's copy.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from rag.events import AnswerResult, Citation, SentenceVerdict

TITLE_CHARS = 60
STORE_VERSION = 1
# localStorage holds a few MB per site: the most recent conversations are kept, not all
MAX_STORED_CONVERSATIONS = 200


@dataclass(frozen=True)
class ChatTurn:
    """One exchange as this browser sees it."""

    question: str
    answer: str = ""
    result: AnswerResult | None = None
    question_used: str = ""
    error: str | None = None
    stopped: bool = False  # the user pressed Stop; the answer so far is kept, unchecked
    # where the answer is at while it streams ("Searching…", "Reading 3 passages…")
    status: str = ""
    files: dict[str, str] = field(default_factory=dict)  # doc_id -> file name, of its sources

    @property
    def in_history(self) -> bool:
        """Failed and stopped turns are shown but not sent back to the engine as context."""
        return self.result is not None and self.error is None and not self.stopped

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None or self.stopped

    def to_dict(self) -> dict[str, Any]:
        result = self.result
        return {
            "question": self.question,
            "answer": self.answer,
            "question_used": self.question_used,
            "error": self.error,
            "stopped": self.stopped,
            "files": dict(self.files),
            "result": None if result is None else _result_dict(result),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatTurn:
        raw = data.get("result")
        return cls(
            question=str(data.get("question", "")),
            answer=str(data.get("answer", "")),
            question_used=str(data.get("question_used", "")),
            error=data.get("error"),
            stopped=bool(data.get("stopped", False)),
            files={str(k): str(v) for k, v in (data.get("files") or {}).items()},
            result=None if raw is None else _result_from(raw),
        )


def _result_dict(result: AnswerResult) -> dict[str, Any]:
    """What the page shows again after a reload (the passages and ranking are not kept)."""
    return {
        "answer": result.answer,
        "refused": result.refused,
        "citations": [asdict(c) for c in result.citations],
        "question": result.question,
        "question_used": result.question_used,
        "timings": dict(result.timings),
        "error": result.error,
        "reason": result.reason,
        "sentences": [asdict(s) for s in result.sentences],
    }


def _result_from(data: dict[str, Any]) -> AnswerResult:
    return AnswerResult(
        answer=str(data.get("answer", "")),
        refused=bool(data.get("refused", False)),
        citations=[Citation(**c) for c in data.get("citations", [])],
        question=str(data.get("question", "")),
        question_used=str(data.get("question_used", "")),
        timings=dict(data.get("timings", {})),
        error=data.get("error"),
        reason=data.get("reason"),
        sentences=[SentenceVerdict(**s) for s in data.get("sentences", [])],
    )


@dataclass
class Conversation:
    id: str
    title: str
    turns: list[ChatTurn] = field(default_factory=list)
    updated: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "updated": self.updated,
            # an answer still running is kept as stopped: a reload stops it, the question stays
            "turns": [(t if t.done else stopped(t)).to_dict() for t in self.turns],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conversation:
        return cls(
            id=str(data["id"]),
            title=str(data.get("title") or "Untitled"),
            updated=float(data.get("updated", 0.0)),
            turns=[ChatTurn.from_dict(t) for t in data.get("turns", [])],
        )


def title_of(question: str) -> str:
    text = " ".join(question.split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


@dataclass(frozen=True)
class Pending:
    """A question waiting for the answer before it, or a regeneration of one turn."""

    conversation: str
    question: str
    replace: int | None = None  # index of the turn to answer again


class Session:
    """One open page: its conversations, the active one, and the question queue."""

    def __init__(self, stored: object = None, owner: str | None = None) -> None:
        self.owner = owner  # the logged-in user (RAG_AUTH), whose conversations these are
        self.lock = threading.RLock()
        self.conversations: dict[str, Conversation] = {}
        self.active: str | None = None
        self.pending: deque[Pending] = deque()
        self.running = False
        self.stop = threading.Event()
        self.load(stored)

    # -- persistence ---------------------------------------------------------------
    def load(self, stored: object) -> None:
        """Conversations from the browser's store; anything unreadable is dropped, not fatal,
        and so is another user's store (two logins sharing one browser)."""
        if not isinstance(stored, dict) or stored.get("owner") != self.owner:
            return
        for raw in stored.get("conversations", []):
            try:
                conversation = Conversation.from_dict(raw)
            except (KeyError, TypeError, ValueError):
                continue
            self.conversations[conversation.id] = conversation
        active = stored.get("active")
        self.active = active if active in self.conversations else None

    def to_store(self) -> dict[str, Any]:
        with self.lock:
            return {
                "version": STORE_VERSION,
                "owner": self.owner,
                "active": self.active,
                "conversations": [c.to_dict() for c in self.ordered()[:MAX_STORED_CONVERSATIONS]],
            }

    # -- conversations ---------------------------------------------------------------
    def ordered(self) -> list[Conversation]:
        """Most recently used first."""
        with self.lock:
            return sorted(self.conversations.values(), key=lambda c: -c.updated)

    def current(self) -> Conversation | None:
        with self.lock:
            return self.conversations.get(self.active) if self.active else None

    def start(self, question: str) -> Conversation:
        """The active conversation, or a new one titled by its first question."""
        with self.lock:
            conversation = self.current()
            if conversation is None:
                conversation = Conversation(uuid.uuid4().hex[:12], title_of(question))
                conversation.updated = time.time()
                self.conversations[conversation.id] = conversation
                self.active = conversation.id
            return conversation

    def select(self, conversation_id: str | None) -> None:
        with self.lock:
            self.active = conversation_id if conversation_id in self.conversations else None

    def rename(self, conversation_id: str | None, title: str) -> bool:
        title = " ".join((title or "").split())
        with self.lock:
            conversation = self.conversations.get(conversation_id or "")
            if conversation is None or not title:
                return False
            conversation.title = title[:200]
            return True

    def delete(self, conversation_id: str | None) -> bool:
        with self.lock:
            if self.conversations.pop(conversation_id or "", None) is None:
                return False
            if self.active == conversation_id:
                self.active = None
            return True

    # -- the question queue ------------------------------------------------------------
    def enqueue(self, item: Pending) -> bool:
        """Queue a question; True when an answer is already running (it will follow it)."""
        with self.lock:
            self.pending.append(item)
            return self.running

    def claim(self) -> bool:
        """Become the one worker that answers this page's queue (False: one already is)."""
        with self.lock:
            if self.running:
                return False
            self.running = True
            return True

    def next_pending(self) -> Pending | None:
        """The next question, or None, after which the worker has stopped: checking and
        releasing are one step, so a question queued meanwhile always finds a worker."""
        with self.lock:
            if self.pending:
                # a fresh Stop for each answer: a stopped answer's stream may still be closing
                self.stop = threading.Event()
                return self.pending.popleft()
            self.running = False
            return None

    def queued(self, conversation_id: str | None) -> list[str]:
        with self.lock:
            return [
                p.question
                for p in self.pending
                if p.conversation == conversation_id and p.replace is None
            ]

    def put_turn(self, conversation: Conversation, index: int | None, turn: ChatTurn) -> int:
        """Append (index None) or replace a turn; returns its index."""
        with self.lock:
            conversation.updated = time.time()
            if index is None or index >= len(conversation.turns):
                conversation.turns.append(turn)
                return len(conversation.turns) - 1
            conversation.turns[index] = turn
            return index

    def set_turn(self, conversation: Conversation, index: int, turn: ChatTurn) -> None:
        with self.lock:
            conversation.turns[index] = turn


class Sessions:
    """The open pages of this server, by Gradio session hash. A page that never said goodbye
    (its browser crashed) is forgotten once `limit` newer ones are open; its browser still has
    its conversations."""

    def __init__(self, limit: int = 1000) -> None:
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self.limit = limit

    def open(self, key: str, stored: object, owner: str | None = None) -> Session:
        """This page's session; a page the server does not know (it restarted) starts again
        from the browser's copy, never from nothing."""
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = self._sessions[key] = Session(stored, owner)
                while len(self._sessions) > self.limit:
                    self._sessions.popitem(last=False)[1].stop.set()
            self._sessions.move_to_end(key)
            return session

    def close(self, key: str) -> None:
        with self._lock:
            session = self._sessions.pop(key, None)
        if session is not None:
            session.stop.set()  # a page that went away needs no more of its answer

    def __len__(self) -> int:
        return len(self._sessions)


def stopped(turn: ChatTurn) -> ChatTurn:
    return replace(turn, stopped=True, status="")
