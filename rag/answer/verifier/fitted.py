"""The shipped verifier: boosted trees over a claim's signals, fitted with LightGBM by
`rag_eval.train_verifier` on answers whose correctness the eval suite knows (the seed set,
MultiHop-RAG, the real-document set, and their evidence-removed questions), with the threshold
chosen there for a target precision of the answers it lets through. Ships as `support.json`
next to this file; nothing downloads.

The trees are stored as LightGBM dumps them and walked here: a few hundred small trees cost
well under a millisecond, while importing LightGBM itself costs a second or two, which a
one-shot `rag ask` would pay on every question."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.answer.verifier.base import Support, Verifier
from rag.answer.verifier.signals import SIGNALS, Claim, TokenEncoder, claim_signals

SHIPPED_VERIFIER = Path(__file__).with_name("support.json")


@dataclass
class Trees:
    """A binary LightGBM model as `Booster.dump_model()` writes it: the probability is the
    logistic of the sum of each tree's leaf."""

    trees: list[dict[str, Any]]

    def probability(self, row: Sequence[float]) -> float:
        raw = sum(_leaf(tree["tree_structure"], row) for tree in self.trees)
        return 1.0 / (1.0 + math.exp(-raw))

    @classmethod
    def from_booster(cls, booster: Any) -> Trees:
        return cls(booster.dump_model()["tree_info"])


def _leaf(node: dict[str, Any], row: Sequence[float]) -> float:
    """LightGBM's decision rule: a missing value (NaN) goes the node's default way when the
    node learnt one for NaN; otherwise it counts as zero, and a "Zero" node sends zero there."""
    while "leaf_value" not in node:
        value = row[node["split_feature"]]
        missing = node.get("missing_type", "None")
        if math.isnan(value) and missing != "NaN":
            value = 0.0
        if (missing == "NaN" and math.isnan(value)) or (missing == "Zero" and abs(value) < 1e-35):
            left = bool(node["default_left"])
        else:
            left = value <= node["threshold"]
        node = node["left_child"] if left else node["right_child"]
    return float(node["leaf_value"])


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
