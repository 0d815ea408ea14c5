"""Held-out ranking: questions the shipped reranker was fitted on are each ranked by a fold
model that never saw them (cross-fitting), so figures on them still measure held-out quality."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from rag.config import Settings
from rag.retrieval.pool import Pool
from rag.retrieval.reranker import LambdaMARTReranker, Reranker, trained_on
from rag_eval.data import REPO


@dataclass
class HeldOutRanker(Reranker):
    """Ranks each question with a fold model that was not fitted on it. Each fold's
    `trained_on["question_ids"]` lists the questions it was fitted on."""

    folds: list[LambdaMARTReranker]
    current: LambdaMARTReranker | None = None

    def hold_out(self, question_id: str) -> None:
        """Use, until the next call, a fold that never saw this question."""
        for fold in self.folds:
            if question_id not in set(fold.trained_on.get("question_ids", ())):
                self.current = fold
                return
        raise ValueError(f"every fold model was fitted on question {question_id}")

    def score(self, question: str, pool: Pool) -> np.ndarray:
        if self.current is None:
            raise ValueError("call hold_out(question_id) before ranking")
        return self.current.score(question, pool)


RANKER_FOLDS = REPO / "evals" / "ranker-folds"  # written by rag_eval.train_ranker


def held_out_ranking(
    questions_bytes: bytes, settings: Settings
) -> tuple[HeldOutRanker | None, str | None]:
    """When the learned ranking's model was fitted on the questions being measured (it records
    a hash of its training questions), the fold models that `rag_eval.train_ranker` fitted on
    parts of them, to rank each question with one that never saw it; and a note for the report
    saying which was done. (None, None) when the model was fitted on other questions."""
    try:
        shipped = trained_on(settings.ranker_model)
    except ValueError:
        return None, None
    digest = hashlib.sha256(questions_bytes).hexdigest()[:12]
    if shipped.get("questions_sha256_12") != digest:
        return None, None
    folds = []
    for path in sorted(RANKER_FOLDS.glob("fold-*.json")):
        try:
            if trained_on(path).get("questions_sha256_12") == digest:
                folds.append(LambdaMARTReranker.load(path))
        except ValueError:
            continue
    if len(folds) >= 2:
        inside = RANKER_FOLDS.is_relative_to(REPO)
        shown = RANKER_FOLDS.relative_to(REPO) if inside else RANKER_FOLDS
        return HeldOutRanker(folds), (
            "The learned ranking's model (rag/retrieval/reranker) was fitted on these "
            "questions, so each "
            "question here is ranked by one of its fold models instead "
            f"(`{shown}`, {len(folds)} folds, written by "
            "`rag_eval.train_ranker`): a model fitted on the other questions, never on it."
        )
    return None, (
        "The learned ranking's model (rag/retrieval/reranker) was fitted on these questions "
        f"({shipped.get('n_questions', '?')} of them, `rag_eval.train_ranker`), and no "
        "fold models were found to rank them held out: these figures are not held out; see "
        "the ranker's report (evals/reports/ranker) for held-out ones."
    )
