"""The short questions' reranker: LightGBM LambdaMART over each fused chunk's signals.

A short question (one fact, a few words that one chunk holds) is ranked by reciprocal-rank
fusion of its dense and keyword hits, and only the best two or three chunks fit the prompt.
Ranks alone miss what tells the chunk that holds the fact from its neighbours on the same
topic: how much of the question, weighted by how rare each word is among the candidates, the
chunk itself holds; whether one of its sentences holds most of it; whether it carries a number
when the question asks for one. Boosted trees weigh these with the fused rank, the cosine and
the BM25 score. The model is fitted by `rag_eval.train_short_ranker` on questions about
documents of kinds users bring (manuals, references), never on news, and ships as
`short_questions.json` next to this file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.retrieval.candidates import Candidate
from rag.retrieval.reranker.lambdamart import TRAINING, BoostedRanker
from rag.text import STOPWORDS, passage_sentences, words

SHIPPED_SHORT_MODEL = Path(__file__).with_name("short_questions.json")

SHORT_FEATURES = (
    "fused_rank",  # 1 / (1 + its place in the fused list)
    "fused_score",
    "cosine",  # of the chunk's stored vector with the question's
    "keyword",  # its BM25 score / the best chunk's
    "question_share",  # share of the question's content words the chunk holds
    "rare_question_share",  # the same, each word weighted by its rarity among the candidates
    "section_share",  # share of them in the chunk's section path
    "best_sentence_share",  # the most of them one sentence of the chunk holds
    "asks_number",  # the question asks how many, how long, which default or version
    "has_number",
    "length",  # content words / 100
)

_ASKS_NUMBER = re.compile(
    r"\b(?:how (?:many|much|long|large|often|big|far|old|fast)|default|maximum|minimum|"
    r"limit|version|what (?:size|range|value|rate))\b",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"\d")

# Small trees, few rounds: it is fitted on about a hundred questions, and larger trees would
# learn those documents instead of what a relevant chunk looks like.
SHORT_TRAINING = {**TRAINING, "learning_rate": 0.05, "num_leaves": 3, "min_data_in_leaf": 10}
SHORT_ROUNDS = 60


def _content(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOPWORDS]


def short_features(
    question: str,
    candidates: Sequence[Candidate],
    cosines: np.ndarray,
    keyword: np.ndarray,
) -> np.ndarray:
    """(candidates × SHORT_FEATURES), the candidates in their fused order; `cosines` and
    `keyword` (BM25 / the best) hold one value per candidate."""
    asked = list(dict.fromkeys(_content(question)))
    texts = [c.node.node.get_content(metadata_mode="none") for c in candidates]
    vocabularies = [set(_content(t)) for t in texts]
    rarity = {
        w: math.log((len(texts) + 1) / (sum(w in v for v in vocabularies) + 0.5)) for w in asked
    }
    total_rarity = sum(rarity.values()) or 1.0
    asks_number = float(bool(_ASKS_NUMBER.search(question)))

    def share(vocabulary: set[str]) -> float:
        return sum(w in vocabulary for w in asked) / len(asked) if asked else 0.0

    rows = []
    for place, (candidate, text, vocabulary) in enumerate(
        zip(candidates, texts, vocabularies, strict=True)
    ):
        section = str(candidate.node.node.metadata.get("section") or "")
        sentences = [set(_content(m.group(0))) for m in passage_sentences(text)]
        rows.append(
            [
                1.0 / (1.0 + place),
                candidate.score,
                float(cosines[place]),
                float(keyword[place]),
                share(vocabulary),
                sum(rarity[w] for w in asked if w in vocabulary) / total_rarity,
                share(set(_content(section))),
                max((share(s) for s in sentences), default=0.0),
                asks_number,
                float(bool(_DIGIT.search(text))),
                len(vocabulary) / 100.0,
            ]
        )
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(SHORT_FEATURES))


# How many of the model's best chunks keep their fused order between them. The answering model
# is sensitive to the order it reads passages in, and reordering the chunks it would have been
# shown anyway changed its answers, right ones as often as wrong ones (evals/reports/session15).
# So the model decides which chunks come first; among those, the fused order stands.
KEPT_IN_FUSED_ORDER = 2


def learned_order(scores: np.ndarray, kept: int = KEPT_IN_FUSED_ORDER) -> list[int]:
    """Candidate indices (fused order: 0, 1, …) by the model's `scores`: its best `kept` in
    their fused order, then the rest, best first."""
    by_score = [int(i) for i in np.argsort(-scores, kind="stable")]
    best = sorted(by_score[:kept])
    return [*best, *(i for i in by_score if i not in best)]


class ShortReranker(Protocol):
    """What the retriever asks of a short questions' model (a fold model in `rag eval`)."""

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """One score per row of `SHORT_FEATURES`, higher is better."""
        ...


class ShortQuestionReranker(BoostedRanker, ShortReranker):
    """A LightGBM LambdaMART model over `SHORT_FEATURES`, as fitted by `fit_short_reranker`."""

    FEATURE_NAMES = SHORT_FEATURES
    SHIPPED = SHIPPED_SHORT_MODEL
    TRAINER = "rag_eval.train_short_ranker"


def fit_short_reranker(
    groups: Sequence[tuple[np.ndarray, np.ndarray]], trained_on: dict | None = None
) -> ShortQuestionReranker:
    """A model from `groups` of (features, relevant flags), one per question."""
    return ShortQuestionReranker.fit(groups, trained_on, SHORT_TRAINING, SHORT_ROUNDS)
