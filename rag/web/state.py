"""What one browser session keeps of its conversation (in `gr.State`, never globally)."""

from __future__ import annotations

from dataclasses import dataclass

from rag.events import AnswerResult


@dataclass(frozen=True)
class ChatTurn:
    """One exchange as this browser session sees it."""

    question: str
    answer: str = ""
    result: AnswerResult | None = None
    question_used: str = ""
    error: str | None = None

    @property
    def in_history(self) -> bool:
        """Failed turns are shown but not sent back to the engine as context."""
        return self.result is not None and self.error is None
