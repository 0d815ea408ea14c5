"""The shipped verifier: LightGBM trees over a claim's signals, fitted by
`rag_eval.train_verifier` on answers whose correctness the eval suite knows (the seed set,
MultiHop-RAG, the real-document set, and their evidence-removed questions), with the threshold
chosen there for a target precision of the answers it lets through. Ships as `support.json`
next to this file; nothing downloads."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.answer.verifier.base import Support, Verifier
from rag.answer.verifier.signals import SIGNALS, Claim, TokenEncoder, claim_signals

if TYPE_CHECKING:
    import lightgbm

SHIPPED_VERIFIER = Path(__file__).with_name("support.json")


@dataclass
class FittedVerifier(Verifier):
    booster: lightgbm.Booster
    threshold: float
    trained_on: dict = field(default_factory=dict)
    encoder: TokenEncoder | None = None

    def support(self, claim: Claim) -> Support:
        signals = claim_signals(claim, self.encoder)
        return Support(self.probability(signals), signals)

    def probability(self, signals: dict[str, float]) -> float:
        row = np.array([[signals.get(name, math.nan) for name in SIGNALS]], dtype=np.float64)
        return float(self.booster.predict(row, num_threads=1)[0])

    def to_json(self) -> str:
        return json.dumps(
            {
                "signals": list(SIGNALS),
                "threshold": self.threshold,
                "trained_on": self.trained_on,
                "lightgbm_model": self.booster.model_to_string(),
            }
        )

    @classmethod
    def load(cls, path: Path | None = None, encoder: TokenEncoder | None = None) -> FittedVerifier:
        """A model written by `rag_eval.train_verifier` (None: the shipped one); it must be
        for this code's signals."""
        import lightgbm

        path = path or SHIPPED_VERIFIER
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read verifier model {path}: {exc}") from exc
        if data.get("signals") != list(SIGNALS):
            raise ValueError(
                f"verifier model {path} was fitted on other signals; refit it with "
                "`python -m rag_eval.train_verifier`"
            )
        try:
            booster = lightgbm.Booster(model_str=str(data["lightgbm_model"]))
        except (KeyError, lightgbm.basic.LightGBMError) as exc:
            raise ValueError(f"cannot read verifier model {path}: {exc!r}") from exc
        return cls(booster, float(data["threshold"]), data.get("trained_on") or {}, encoder)
