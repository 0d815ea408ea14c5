"""Held-out ranking: questions the shipped reranker was fitted on are each ranked by a fold
model that never saw them (cross-fitting), so figures on them still measure held-out quality."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from rag.answer.verifier import SHIPPED_VERIFIER, Claim, FittedVerifier, Support, Verifier
from rag.config import Settings
from rag.retrieval.pool import Pool
from rag.retrieval.reranker import LambdaMARTReranker, Reranker, trained_on
from rag.retrieval.reranker.lambdamart import read_model_file
from rag.retrieval.reranker.short_questions import (
    SHIPPED_SHORT_MODEL,
    SHORT_FEATURES,
    ShortQuestionReranker,
    ShortReranker,
)
from rag_eval.data import REPO, Question, question_key


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
SHORT_FOLD_PREFIX = "short-fold-"  # rag_eval.train_short_ranker's, in RANKER_FOLDS


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


@dataclass
class HeldOutShortRanker(ShortReranker):
    """Ranks each short question with a fold model of the short questions' reranker that was
    not fitted on it."""

    folds: list[ShortQuestionReranker]
    current: ShortQuestionReranker | None = None

    def hold_out(self, question_id: str) -> None:
        for fold in self.folds:
            if question_id not in set(fold.trained_on.get("question_ids", ())):
                self.current = fold
                return
        raise ValueError(f"every short-question fold model was fitted on question {question_id}")

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        if self.current is None:
            raise ValueError("call hold_out(question_id) before ranking")
        return self.current.predict(matrix)


def held_out_short_ranking(
    questions_bytes: bytes, settings: Settings
) -> tuple[HeldOutShortRanker | None, str | None]:
    """As `held_out_ranking`, for the short questions' reranker and the fold models
    `rag_eval.train_short_ranker` wrote (`short-fold-*.json`)."""
    path = settings.short_ranker_model or SHIPPED_SHORT_MODEL
    if not settings.rerank_short_questions or not path.is_file():
        return None, None
    names = (SHORT_FEATURES, "rag_eval.train_short_ranker")
    shipped = read_model_file(path, *names).get("trained_on") or {}
    digest = hashlib.sha256(questions_bytes).hexdigest()[:12]
    if shipped.get("questions_sha256_12") != digest:
        return None, None
    folds = [
        ShortQuestionReranker.load(fold)
        for fold in sorted(RANKER_FOLDS.glob(f"{SHORT_FOLD_PREFIX}*.json"))
        if (read_model_file(fold, *names).get("trained_on") or {}).get("questions_sha256_12")
        == digest
    ]
    if len(folds) < 2:
        return None, (
            "The short questions' reranker was fitted on these questions and no fold models "
            "were found: the ranking of short questions here is not held out."
        )
    return HeldOutShortRanker(folds), (
        "The short questions' reranker (rag/retrieval/reranker/short_questions.json) was "
        "fitted on these questions, so each short question here is ranked by one of its "
        f"{len(folds)} fold models (`evals/ranker-folds/short-fold-*.json`, written by "
        "`rag_eval.train_short_ranker`), fitted on other questions, never on it."
    )


VERIFIER_FOLDS = REPO / "evals" / "verifier-folds"  # written by rag_eval.train_verifier


@dataclass
class HeldOutVerifier(Verifier):
    """Decides each question the shipped verifier was fitted on with a fold model (and its
    own threshold) that was not; other questions with the shipped model."""

    shipped: FittedVerifier
    folds: list[FittedVerifier]
    current: FittedVerifier | None = None

    def hold_out(self, key: str) -> None:
        if key not in set(self.shipped.trained_on.get("question_keys", ())):
            self.current = self.shipped
            return
        for fold in self.folds:
            if key not in set(fold.trained_on.get("question_keys", ())):
                self.current = fold
                return
        raise ValueError(f"every verifier fold model was fitted on question {key}")

    @property
    def threshold(self) -> float:  # type: ignore[override]
        return (self.current or self.shipped).threshold

    def support(self, claim: Claim) -> Support:
        return (self.current or self.shipped).support(claim)


def held_out_verifier(
    dataset: str, questions: list[Question], verifier: Verifier
) -> tuple[HeldOutVerifier | None, str | None]:
    """When the engine's fitted verifier was fitted on some of these questions, the fold
    models `rag_eval.train_verifier` wrote, to decide each of them with one that never saw it;
    and a note for the report. (None, None) when it saw none of them or none is fitted."""
    if not isinstance(verifier, FittedVerifier):
        return None, None
    trained = set(verifier.trained_on.get("question_keys", ()))
    seen = sum(question_key(dataset, q.id) in trained for q in questions)
    if not seen:
        return None, None
    folds = [
        FittedVerifier.load(path, verifier.encoder)
        for path in sorted(VERIFIER_FOLDS.glob("fold-*.json"))
    ]
    if len(folds) < 2:
        return None, (
            f"The verifier was fitted on {seen} of these questions and no fold models were "
            "found: its decisions here are not held out."
        )
    where = SHIPPED_VERIFIER.relative_to(REPO) if SHIPPED_VERIFIER.is_relative_to(REPO) else ""
    return HeldOutVerifier(verifier, folds), (
        f"The verifier ({where or 'the configured model'}) was fitted on {seen} of these "
        f"questions, so each of them is decided by one of its {len(folds)} fold models "
        "(`evals/verifier-folds`, written by `rag_eval.train_verifier`), fitted on other "
        "questions with its own threshold, never on it."
    )
