"""The shipped verifier: boosted trees over a claim's signals, fitted with LightGBM by
`rag_eval.train_verifier` on answers whose correctness the eval suite knows (the seed set,
MultiHop-RAG, the real-document set, and their evidence-removed questions), with the threshold
chosen there for a target precision of the answers it lets through. Ships as `support.json`
next to this file; nothing downloads.

The trees are stored as LightGBM dumps them and walked without LightGBM (`rag.boosted_trees`),
whose import a one-shot `rag ask` would otherwise pay on every question."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from rag.answer.verifier.base import Support, Verifier
from rag.answer.verifier.signals import SIGNALS, Claim, TokenEncoder, claim_signals
from rag.boosted_trees import BoostedTrees

SHIPPED_VERIFIER = Path(__file__).with_name("support.json")


@dataclass
class Trees:
    """A binary LightGBM model as `Booster.dump_model()` writes it (the form the model file
    keeps): the probability is the logistic of the sum of each tree's leaf."""

    trees: list[dict[str, Any]]

    @cached_property
    def _walked(self) -> BoostedTrees:
        return BoostedTrees.from_dump(self.trees)

    def probability(self, row: Sequence[float]) -> float:
        return float(self._walked.probabilities(np.array([row], dtype=np.float64))[0])

    @classmethod
    def from_booster(cls, booster: Any) -> Trees:
        return cls(booster.dump_model()["tree_info"])


@dataclass
class FittedVerifier(Verifier):
    trees: Trees
    threshold: float
    trained_on: dict = field(default_factory=dict)
    encoder: TokenEncoder | None = None

    def support(self, claim: Claim) -> Support:
        signals = claim_signals(claim, self.encoder)
        return Support(self.probability(signals), signals)

    def probability(self, signals: dict[str, float]) -> float:
        return self.trees.probability([signals.get(name, math.nan) for name in SIGNALS])

    def to_json(self) -> str:
        return json.dumps(
            {
                "signals": list(SIGNALS),
                "threshold": self.threshold,
                "trained_on": self.trained_on,
                "trees": self.trees.trees,
            }
        )

    @classmethod
    def load(cls, path: Path | None = None, encoder: TokenEncoder | None = None) -> FittedVerifier:
        """A model written by `rag_eval.train_verifier` (None: the shipped one); it must be
        for this code's signals."""
        path = path or SHIPPED_VERIFIER
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            trees, threshold = Trees(list(data["trees"])), float(data["threshold"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"cannot read verifier model {path}: {exc!r}") from exc
        if data.get("signals") != list(SIGNALS):
            raise ValueError(
                f"verifier model {path} was fitted on other signals; refit it with "
                "`python -m rag_eval.train_verifier`"
            )
        return cls(trees, threshold, data.get("trained_on") or {}, encoder)
