"""One answer's claims through the verifier, shared by the streaming gate and the final check:
each claim is scored once, and the answer's first claim decides whether it is given at all.

The first claim decides because it is the answer (later sentences elaborate), and because it is
the first text a user could see: once the first sentence has streamed, refusing would withdraw
it. Later claims keep their own probability, shown as each citation's support."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from rag.answer.citations import CheckedAnswer
from rag.answer.verifier.base import Support, Verifier
from rag.answer.verifier.signals import Claim
from rag.events import Passage, SentenceVerdict


class SupportReview:
    """`decides=False` scores the claims (their support is still shown) but lets the answer
    through whatever the score: for long, many-sided questions, whose answers join facts of
    several passages, the verifier's signals (how one cited window holds the question and the
    answer together) say little, and its refusals would mostly be of right answers."""

    def __init__(
        self,
        verifier: Verifier,
        question: str,
        shown: Sequence[Passage],
        decides: bool = True,
    ) -> None:
        self.verifier, self.question, self.shown = verifier, question, list(shown)
        self.decides = decides
        self.first: Support | None = None  # the first claim's support, once scored
        self.admitted: bool | None = None  # whether the answer may be given, once decided
        self.refused = False  # whether the review refused an answer the check had kept
        self._scored: dict[tuple[str, tuple[int, ...]], Support] = {}
        self.elapsed_ms = 0.0  # time spent scoring, for the answer's timings

    def score(self, verdict: SentenceVerdict) -> Support:
        key = (verdict.text, tuple(verdict.citations))
        if key not in self._scored:
            started = time.perf_counter()
            cited = [p for p in self.shown if p.n in verdict.citations]
            self._scored[key] = self.verifier.support(
                Claim(self.question, verdict.text, cited, self.shown)
            )
            self.elapsed_ms += (time.perf_counter() - started) * 1000
        return self._scored[key]

    def admit(self, verdict: SentenceVerdict) -> bool:
        """Whether the answer may be given; the first claim asked about decides, for good."""
        support = self.score(verdict)
        if self.admitted is None:
            self.first = support
            self.admitted = not self.decides or support.probability >= self.verifier.threshold
        return self.admitted

    def review(self, checked: CheckedAnswer, refusal: str) -> CheckedAnswer:
        """The checked answer, refused if its first claim is not admitted; else with each kept
        claim's probability as its support."""
        claims = [v for v in checked.verdicts if v.kept and v.citations]
        if checked.refused or not claims:
            return checked
        if not self.admit(claims[0]):
            self.refused = True
            verdicts = [replace(v, kept=False) for v in checked.verdicts]
            return CheckedAnswer(refusal, True, {}, verdicts)
        verdicts = [
            replace(v, support=round(self.score(v).probability, 3)) if v.kept and v.citations else v
            for v in checked.verdicts
        ]
        return replace(checked, verdicts=verdicts)
