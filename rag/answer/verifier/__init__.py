"""Verifiers: how likely an answer sentence's cited passages support it (the seam, its signals,
the lexical fallback and the shipped fitted model)."""

from rag.answer.verifier.base import Support, Verifier
from rag.answer.verifier.fitted import SHIPPED_VERIFIER, FittedVerifier, Trees
from rag.answer.verifier.lexical import LexicalVerifier
from rag.answer.verifier.review import SupportReview
from rag.answer.verifier.signals import SIGNALS, Claim, TokenEncoder, claim_signals

__all__ = [
    "SHIPPED_VERIFIER",
    "SIGNALS",
    "Claim",
    "FittedVerifier",
    "LexicalVerifier",
    "Support",
    "SupportReview",
    "TokenEncoder",
    "Trees",
    "Verifier",
    "claim_signals",
]
