"""The verifier seam: how likely the passages an answer sentence cites support it.

A verifier reads one `Claim` (question, sentence, cited and shown passages) and returns a
`Support`: a probability and the signals it was computed from (kept on the result, so the eval
suite can fit the next model from what the product measured). Its `threshold` is the least
probability at which an answer is given at all: below it, the answer's first claim, and with it
the answer, is refused.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from rag.answer.verifier.signals import Claim


@dataclass(frozen=True)
class Support:
    probability: float
    signals: dict[str, float] = field(default_factory=dict)


class Verifier(ABC):
    threshold: float = 0.0

    @abstractmethod
    def support(self, claim: Claim) -> Support:
        """How likely the claim's cited passages support it, in [0, 1]."""
