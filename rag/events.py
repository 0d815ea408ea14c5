"""The stream of events that `answer()` yields; the page, the CLI and the evals consume only this.

Order for one question: `Searching` (the standalone question used for retrieval), `Sources`
(the passages shown to the LLM), zero or more `Token`, then exactly one `Final`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk, numbered as the LLM sees it (`[n]`)."""

    n: int
    chunk_id: str
    doc_id: str
    title: str
    text: str
    start: int  # character offsets of the chunk in its (cleaned) source document
    end: int
    published: str | None = None
    source: str | None = None
    score: float = 0.0
    page: int | None = None  # 1-based page of a paged document (PDF) where the passage starts
    section: str | None = None  # heading path of the passage ("2.4 Library Notes")
    page_starts: tuple[int, ...] = ()  # offsets where later pages begin inside the passage

    def page_of(self, offset: int) -> int | None:
        """The page of a document offset inside this passage."""
        if self.page is None:
            return None
        return self.page + sum(1 for start in self.page_starts if start <= offset)


@dataclass(frozen=True)
class Citation:
    """A passage an answer relies on, with the span in it that supports the answer."""

    n: int
    doc_id: str
    title: str
    text: str  # the whole chunk text
    start: int  # supporting span, character offsets in the source document
    end: int
    published: str | None = None
    chunk_start: int = 0  # chunk offsets in the source document; span - chunk_start indexes text
    chunk_end: int = 0
    page: int | None = None  # 1-based page of the supporting span in a paged document (PDF)
    section: str | None = None  # heading path of the passage
    support: float | None = None  # probability that the passage supports what cites it

    @property
    def span(self) -> str:
        return self.text[self.start - self.chunk_start : self.end - self.chunk_start]

    def location(self, name: str | None = None) -> str:
        """Where it points, in words: "libtasn1.pdf · p. 7 · 2.4 Library Notes" (`name`
        defaults to the title)."""
        parts = [name or self.title]
        if self.page is not None:
            parts.append(f"p. {self.page}")
        if self.section:
            parts.append(self.section)
        return " · ".join(parts)


@dataclass(frozen=True)
class RankedUnit:
    """One entry of the retrieval ranking: the unit that was ranked (a chunk, or a section of
    a long question), before the passage budget picks what the LLM reads."""

    doc_id: str
    key: str  # chunk or section id
    text: str


@dataclass(frozen=True)
class SentenceVerdict:
    """One sentence of the model's answer and what the check made of it."""

    text: str  # without citation marks
    citations: list[int]  # passage numbers it cites (as in the final answer)
    support: float | None  # probability that its cited passages support it
    kept: bool  # in the final answer


@dataclass
class AnswerResult:
    answer: str
    refused: bool
    citations: list[Citation]
    question: str
    question_used: str
    passages: list[Passage] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds
    tokens: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    ranked: list[RankedUnit] = field(default_factory=list)  # the ranking's head, best first
    raw_answer: str | None = None  # the model's text before the citation check
    sentences: list[SentenceVerdict] = field(default_factory=list)
    # why an answer was refused: "not_in_documents", "no_documents" (the knowledge base is empty)
    reason: str | None = None
    # which step refused it: "retrieval" (nothing relevant), "model" (the LLM declined), "check"
    # (no claim supported by its passages) or "verifier" (the first claim's support too low)
    refused_by: str | None = None
    # what kind of error `error` is: "empty_question" and "question_too_long" (the question
    # itself), "llm" (the model endpoint failed); lets a shell choose its status without parsing
    error_code: str | None = None
    # the verifier's probability that the answer's first claim is supported (None: no claim
    # reached it), and the signals it read (for measurement and refitting)
    answerability: float | None = None
    signals: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The object `rag ask --json` prints and the page's `ask` API returns."""
        return {
            "question": self.question,
            "answer": self.answer,
            "refused": self.refused,
            "citations": [asdict(c) for c in self.citations],
            "question_used": self.question_used,
            "timings": {k: round(v, 1) for k, v in self.timings.items()},
            "tokens": dict(self.tokens),
            "error": self.error,
            "error_code": self.error_code,
            "reason": self.reason,
            "sentences": [asdict(s) for s in self.sentences],
            "answerability": self.answerability,
        }


@dataclass(frozen=True)
class Searching:
    question_used: str


@dataclass(frozen=True)
class Sources:
    passages: list[Passage]


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Final:
    result: AnswerResult


Event = Searching | Sources | Token | Final


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a conversation."""

    question: str
    answer: str
