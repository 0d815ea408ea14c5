"""The verifier when no fitted model is used: the lexical check's share of the sentence's facts
found in its passages, with no threshold of its own (the lexical check already dropped what it
could not support)."""

from __future__ import annotations

from rag.answer.verifier.base import Support, Verifier
from rag.answer.verifier.signals import Claim, TokenEncoder, claim_signals


class LexicalVerifier(Verifier):
    threshold = 0.0

    def __init__(self, encoder: TokenEncoder | None = None) -> None:
        self.encoder = encoder

    def support(self, claim: Claim) -> Support:
        signals = claim_signals(claim, self.encoder)
        return Support(signals["lexical_support"], signals)
