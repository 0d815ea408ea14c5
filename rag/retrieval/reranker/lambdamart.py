"""The shipped reranker: LightGBM LambdaMART trees over each candidate section's signals.

Reciprocal-rank fusion only sees ranks. The signals that tell an evidence section from another
section of the same article are finer (see `rag.retrieval.pool`), and boosted trees weigh them
together: a linear model can give each signal only one weight, whatever the others say. The
model is fitted on labelled questions by `rag_eval.train_ranker` and ships as `lambdamart.json`
next to this file; nothing downloads.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

import numpy as np

from rag.boosted_trees import BoostedTrees
from rag.retrieval.pool import Pool, PoolSignals
from rag.retrieval.reranker.base import Reranker

SHIPPED_MODEL = Path(__file__).with_name("lambdamart.json")

FEATURES = (
    "best_claim_rank_chunk_keywords_and_cosine",  # 1 / (1 + its best rank for any claim)
    "best_claim_rank_chunk_keywords",
    "claim_chunk_keywords_plus_cosine",  # max over claims
    "claim_chunk_keywords",
    "question_keywords",  # BM25 of the whole question, over all sections
    "claim_keywords",
    "question_keywords_in_named_source",
    "question_cosine",  # its chunk closest to the whole question
    "claim_cosine",
    "claim_cosine_below_best",  # 0 for the candidate closest to some claim
    "claim_keywords_below_best",
    "from_named_source",
    "in_named_date_window",
    "position_in_article",  # 0 first section .. 1 last
    "first_section",
    "article_share_of_first_stage",  # how many first-stage candidates share its article / 5
    "article_best_claim_match",  # its article's best claim_chunk_keywords_plus_cosine
)


def _best_over(matrix: np.ndarray, parts: list[int], fallback: np.ndarray) -> np.ndarray:
    return matrix[parts].max(axis=0) if parts else fallback


def features(s: PoolSignals) -> np.ndarray:
    """(sections × FEATURES). Questions without claims use the whole question in their place."""
    claims = [i for i, flag in enumerate(s.is_claim) if flag]
    sourced = [i for i, flag in enumerate(s.is_sourced_question) if flag]
    keywords, chunk_keywords, cosine = s.section_keywords, s.chunk_keywords, s.cosine
    question_keywords, question_cosine = keywords[0], cosine[0]
    combined = chunk_keywords + cosine
    parts = claims or [0]
    # each section's best rank among the pool for any claim (0 = some claim's best match)
    rank_combined = np.argsort(np.argsort(-combined[parts], axis=1, kind="stable"), axis=1)
    rank_chunk = np.argsort(np.argsort(-chunk_keywords[parts], axis=1, kind="stable"), axis=1)
    claim_combined = combined[parts].max(axis=0)
    in_first_stage = defaultdict(int)
    best_in_article: dict[str, float] = defaultdict(lambda: -np.inf)
    for j, doc_id in enumerate(s.doc_ids):
        in_first_stage[doc_id] += int(s.first_stage[j])
        best_in_article[doc_id] = max(best_in_article[doc_id], float(claim_combined[j]))
    columns = [
        1.0 / (1.0 + rank_combined.min(axis=0)),
        1.0 / (1.0 + rank_chunk.min(axis=0)),
        claim_combined,
        chunk_keywords[parts].max(axis=0),
        question_keywords,
        _best_over(keywords, claims, question_keywords),
        _best_over(keywords, sourced, question_keywords),
        question_cosine,
        _best_over(cosine, claims, question_cosine),
        (cosine[parts] - cosine[parts].max(axis=1, keepdims=True)).max(axis=0),
        (keywords[parts] - keywords[parts].max(axis=1, keepdims=True)).max(axis=0),
        s.from_named_source.astype(float),
        s.in_named_date_window.astype(float),
        s.position / np.maximum(1, s.sections_in_article - 1),
        (s.position == 0).astype(float),
        np.array([in_first_stage[d] for d in s.doc_ids]) / 5.0,
        np.array([best_in_article[d] for d in s.doc_ids]),
    ]
    return np.stack(columns, axis=1).astype(np.float64)


# LambdaMART (LightGBM's lambdarank objective): boosted trees that optimise NDCG of each
# question's list. Fewer, larger trees than LightGBM's usual hundreds of small ones: scoring
# time grows with the number of trees and is paid on every long question. Single-threaded:
# OpenMP threads spinning on the two cores would slow the embedder that runs next (as
# OpenBLAS's did, see rag/offline.py).
TRAINING = {
    "objective": "lambdarank",
    "lambdarank_truncation_level": 20,
    "learning_rate": 0.1,
    "num_leaves": 63,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "seed": 0,
    "deterministic": True,
    "num_threads": 1,
    "verbose": -1,
}
ROUNDS = 200


@dataclass
class BoostedRanker:
    """LightGBM trees over a fixed list of features, read from and written to a model file
    that names them (a file for other features is refused). The file holds LightGBM's text
    model; scoring walks its trees without LightGBM (`rag.boosted_trees`)."""

    model_text: str
    trained_on: dict
    trees: BoostedTrees = field(init=False, repr=False)

    FEATURE_NAMES: ClassVar[tuple[str, ...]] = FEATURES
    SHIPPED: ClassVar[Path] = SHIPPED_MODEL
    TRAINER: ClassVar[str] = "rag_eval.train_ranker"

    def __post_init__(self) -> None:
        self.trees = BoostedTrees.from_model_string(self.model_text)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Scores of rows of `FEATURE_NAMES`, higher is better."""
        return self.trees.raw_scores(matrix)

    def to_json(self) -> str:
        return json.dumps(
            {
                "features": list(self.FEATURE_NAMES),
                "trained_on": self.trained_on,
                "lightgbm_model": self.model_text,
            }
        )

    @classmethod
    def load(cls, path: Path | None = None) -> Self:
        """A model written by its trainer (None: the shipped one); it must be for this code's
        features."""
        path = path or cls.SHIPPED
        data = read_model_file(path, cls.FEATURE_NAMES, cls.TRAINER)
        try:
            return cls(str(data["lightgbm_model"]), trained_on=data.get("trained_on") or {})
        except (KeyError, ValueError, IndexError) as exc:
            raise ValueError(f"cannot read ranker model {path}: {exc!r}") from exc

    @classmethod
    def fit(
        cls,
        groups: Sequence[tuple[np.ndarray, np.ndarray]],
        trained_on: dict | None,
        params: dict,
        rounds: int,
    ) -> Self:
        """A model from `groups` of (features, relevant flags), one per question. Questions
        with no relevant candidate, or nothing else, teach nothing and are skipped."""
        import lightgbm

        usable = [(x, y.astype(bool)) for x, y in groups if len(x) and y.any() and not y.all()]
        if not usable:
            raise ValueError("no question has both a relevant and another candidate to learn from")
        names = cls.FEATURE_NAMES
        data = lightgbm.Dataset(
            np.vstack([x for x, _ in usable]),
            np.concatenate([y.astype(int) for _, y in usable]),
            group=[len(y) for _, y in usable],
            feature_name=list(names) if usable[0][0].shape[1] == len(names) else "auto",
            free_raw_data=True,
        )
        booster = lightgbm.train(params, data, num_boost_round=rounds)
        return cls(booster.model_to_string(), trained_on=trained_on or {})


@dataclass
class LambdaMARTReranker(BoostedRanker, Reranker):
    """A LightGBM LambdaMART model over `FEATURES`, as trained by `fit_lambdamart`."""

    def score(self, question: str, pool: Pool) -> np.ndarray:
        return self.predict(features(pool.signals))


def trained_on(path: Path | None = None) -> dict:
    """What a model file records of its training (None: the shipped one), without building
    its trees: `rag eval` checks it before deciding which models to load."""
    return read_model_file(path or SHIPPED_MODEL).get("trained_on") or {}


def read_model_file(
    path: Path, names: Sequence[str] = FEATURES, trainer: str = "rag_eval.train_ranker"
) -> dict:
    """A ranker model file's JSON, which must be for the features `names` this code computes."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read ranker model {path}: {exc!r}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"cannot read ranker model {path}: not a JSON object")
    if data.get("features") != list(names):
        raise ValueError(
            f"ranker model {path} was trained for other features than this code computes; "
            f"retrain it with `python -m {trainer}`"
        )
    return data


def fit_lambdamart(
    groups: Sequence[tuple[np.ndarray, np.ndarray]],
    trained_on: dict | None = None,
    rounds: int = ROUNDS,
    **params,
) -> LambdaMARTReranker:
    """A LambdaMART model from `groups` of (features, relevant flags), one per question.
    `params` override `TRAINING` (tests fit tiny data with smaller leaves)."""
    return LambdaMARTReranker.fit(groups, trained_on, {**TRAINING, **params}, rounds)
