"""Learned ranking of a long question's candidate sections: a linear model over their signals.

Reciprocal-rank fusion only sees ranks. The signals that tell an evidence section from another
section of the same article are finer: how well the section (and its best chunk) matches each
claim of the question by keywords and by embedding, relative to the other candidates; whether
its publisher and date are the ones the question names; where it sits in its article. A linear
model weighs them, trained on labelled questions (`evals/train_ranker.py`, MultiHop-RAG dev) with
a listwise loss: the probability mass a softmax over one question's candidates puts on the
sections that hold its evidence. The weights ship as `rag/ranker.json`; no model download.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHIPPED_WEIGHTS = Path(__file__).with_name("ranker.json")

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


@dataclass
class PoolSignals:
    """What the ranker knows of a pool of candidate sections, for one question's plan.

    Matrices are (plan parts × sections). Keyword scores are BM25 divided by the best score for
    that part over the whole corpus (so 1.0 = the corpus's best match), cosines are the best of
    the section's chunks."""

    is_claim: Sequence[bool]  # per plan part: a claim (not the whole question)
    is_sourced_question: Sequence[bool]  # per plan part: the whole question, one publisher
    section_keywords: np.ndarray
    chunk_keywords: np.ndarray  # the section's best chunk
    cosine: np.ndarray
    doc_ids: Sequence[str]
    from_named_source: np.ndarray
    in_named_date_window: np.ndarray
    position: np.ndarray  # section index in its article
    sections_in_article: np.ndarray
    first_stage: np.ndarray  # bool: in the first-stage list (not only added with its article)


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


@dataclass
class LinearRanker:
    """score = Σ weight · (feature − mean) / scale. Higher is better."""

    weights: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    trained_on: dict

    def score(self, matrix: np.ndarray) -> np.ndarray:
        return ((matrix - self.mean) / self.scale) @ self.weights

    def to_json(self) -> str:
        return json.dumps(
            {
                "features": list(FEATURES),
                "weights": self.weights.round(6).tolist(),
                "mean": self.mean.round(6).tolist(),
                "scale": self.scale.round(6).tolist(),
                "trained_on": self.trained_on,
            },
            indent=1,
        )

    @classmethod
    def load(cls, path: Path | None = None) -> LinearRanker:
        """Weights written by `evals/train_ranker.py` (None: the shipped ones); they must be for
        this code's features."""
        path = path or SHIPPED_WEIGHTS
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read ranker weights {path}: {exc}") from exc
        if data.get("features") != list(FEATURES):
            raise ValueError(
                f"ranker weights {path} were trained for other features than this code computes; "
                "retrain them with evals/train_ranker.py"
            )
        arrays = [np.asarray(data[k], dtype=np.float64) for k in ("weights", "mean", "scale")]
        return cls(*arrays, trained_on=data.get("trained_on", {}))


def fit_listwise(
    groups: Sequence[tuple[np.ndarray, np.ndarray]],
    steps: int = 800,
    learning_rate: float = 0.05,
    l2: float = 1e-3,
    trained_on: dict | None = None,
) -> LinearRanker:
    """Weights that maximise, per question, the softmax probability of its relevant candidates
    (the share a listwise model puts on evidence): Adam on the mean negative log of that share.
    `groups` are (features, relevant flags) per question; questions with no relevant candidate
    teach nothing here and are skipped."""
    usable = [(x, y.astype(bool)) for x, y in groups if len(x) and y.any()]
    if not usable:
        raise ValueError("no question has a relevant candidate to learn from")
    stacked = np.vstack([x for x, _ in usable])
    mean, scale = stacked.mean(axis=0), stacked.std(axis=0) + 1e-9
    normalised = [((x - mean) / scale, y) for x, y in usable]
    weights = np.zeros(stacked.shape[1])
    first, second = np.zeros_like(weights), np.zeros_like(weights)
    for step in range(1, steps + 1):
        gradient = l2 * weights
        for x, relevant in normalised:
            logits = x @ weights
            p = np.exp(logits - logits.max())
            p /= p.sum()
            target = np.where(relevant, p, 0.0)
            gradient += x.T @ (p - target / target.sum()) / len(normalised)
        first = 0.9 * first + 0.1 * gradient
        second = 0.999 * second + 0.001 * gradient**2
        corrected = np.sqrt(second / (1 - 0.999**step)) + 1e-8
        weights -= learning_rate * (first / (1 - 0.9**step)) / corrected
    return LinearRanker(weights, mean, scale, trained_on=trained_on or {})
