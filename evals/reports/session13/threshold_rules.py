"""The verifier's threshold under several rules, for each outer fold (chosen on that fold's
inner out-of-fold probabilities, as `rag_eval.train_verifier` does) and for all examples, on
the verifier's training runs. Used for this session's README:

    .venv/bin/python evals/reports/session13/threshold_rules.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.answer.verifier import TokenEncoder
from rag.compose import build_embedder
from rag.config import Settings
from rag_eval import train_verifier as tv

REPORTS = [
    "evals/reports/session10/training/seed/seed.json",
    "evals/reports/session10/training/realdocs/realdocs.json",
    "evals/reports/session10/training/realdocs-er/realdocs-evidence-removed.json",
    "evals/reports/session9/multihop-sample200/multihop-rag-sample200-seed0.json",
    "evals/reports/session10/training/mh-er/multihop-rag-sample240-seed0-evidence-removed.json",
]
RULES = {
    "refusal precision 0.85 (shipped)": lambda p, y: tv.threshold_for_refusals(p, y, 0.85),
    "refusal precision 0.80": lambda p, y: tv.threshold_for_refusals(p, y, 0.80),
    "answers let through precision 0.70": lambda p, y: tv.threshold_for(p, y, 0.70),
    "cost of a wrong answer 1.5": lambda p, y: tv.threshold_by_cost(p, y, 1.5),
}


def main() -> None:
    settings = Settings()
    embedder = build_embedder(settings)
    encoder = embedder if isinstance(embedder, TokenEncoder) else None
    rows = [
        r for p in REPORTS for r in tv.read_rows(Path(p), encoder, settings.long_question_words)
    ]
    examples = [r for r in rows if not r.refused_before and r.signals is not None and not r.long]
    k = 5
    print("| rule | " + " | ".join(f"fold {f + 1}" for f in range(k)) + " | all |")
    print("|---|" + "---|" * (k + 1))
    inner = []
    for fold in range(k):
        train = [r for r in examples if tv.fold_of(r.key, k) != fold]
        inner.append((tv.out_of_fold(train, k - 1), np.array([r.label for r in train])))
    everything = (tv.out_of_fold(examples, k), np.array([r.label for r in examples]))
    for name, rule in RULES.items():
        cells = [rule(p, y) for p, y in [*inner, everything]]
        print(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
