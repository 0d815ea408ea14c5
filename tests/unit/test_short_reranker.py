"""The short questions' reranker: its features on hand-made candidates, its place in the
retriever, its model file, training and held-out fold models, on synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes import ShortByFeature
from llama_index.core.schema import NodeWithScore, TextNode

from rag.retrieval import Retriever
from rag.retrieval.candidates import Candidate
from rag.retrieval.reranker.short_questions import (
    SHIPPED_SHORT_MODEL,
    SHORT_FEATURES,
    ShortQuestionReranker,
    fit_short_reranker,
    learned_order,
    short_features,
)
from rag_eval.heldout import HeldOutShortRanker


def candidate(text: str, score: float, section: str = "") -> Candidate:
    node = TextNode(id_=text[:20], text=text, metadata={"doc_id": "d", "section": section})
    return Candidate(NodeWithScore(node=node, score=score), score, None, None)


def column(matrix: np.ndarray, name: str) -> list[float]:
    return matrix[:, SHORT_FEATURES.index(name)].round(3).tolist()


QUESTION = "What is the default port of the proxy server?"
CANDIDATES = [
    candidate("The proxy server forwards requests. It logs them too.", 0.05),
    candidate("By default the proxy server listens on port 3128.", 0.04, "2.1 Proxy ports"),
    candidate("Servers are described in chapter four.", 0.03),
]


def test_features_count_the_question_words_each_chunk_holds():
    matrix = short_features(QUESTION, CANDIDATES, np.array([0.9, 0.8, 0.1]), np.ones(3))
    assert matrix.shape == (3, len(SHORT_FEATURES))
    assert column(matrix, "fused_rank") == [1.0, 0.5, 0.333]
    assert column(matrix, "cosine") == [0.9, 0.8, 0.1]
    # content words asked: default, port, proxy, server
    assert column(matrix, "question_share") == [0.5, 1.0, 0.0]
    # "default" and "port" are rare among the candidates, "proxy" and "server" are not
    rare = column(matrix, "rare_question_share")
    assert rare[1] == 1.0 and 0.0 < rare[0] < 0.5 and rare[2] == 0.0
    assert column(matrix, "section_share") == [0.0, 0.25, 0.0]  # "proxy"; words match whole
    assert column(matrix, "best_sentence_share") == [0.5, 1.0, 0.0]
    assert column(matrix, "asks_number") == [1.0] * 3
    assert column(matrix, "has_number") == [0.0, 1.0, 0.0]


def test_the_models_best_chunks_keep_their_fused_order_between_them():
    scores = np.array([0.1, 0.5, 0.7, 0.3, 0.9])  # by score: 4, 2, 1, 3, 0
    assert learned_order(scores) == [2, 4, 1, 3, 0]
    assert learned_order(scores, kept=1) == [4, 2, 1, 3, 0]
    assert learned_order(scores, kept=3) == [1, 2, 4, 3, 0]
    assert learned_order(np.array([0.2])) == [0]


def test_a_question_that_asks_for_no_number_is_told_apart():
    matrix = short_features("Who maintains the proxy?", CANDIDATES, np.zeros(3), np.zeros(3))
    assert column(matrix, "asks_number") == [0.0] * 3


def _kb(settings):
    from fakes import FakeEmbedding

    from rag.knowledge_base import KnowledgeBase
    from rag_eval.data import corpus_document

    settings.chunk_size, settings.chunk_overlap = 16, 0
    kb = KnowledgeBase(settings, FakeEmbedding())
    text = (
        "The proxy server forwards requests from the clients. "
        "It writes every request to a log file on the disk. "
        "By default the proxy server listens on port 3128 for clients."
    )
    kb.add_documents([corpus_document({"doc_id": "d", "text": text})])
    return kb


def test_the_retriever_orders_a_short_questions_chunks_by_the_model(settings):
    kb = _kb(settings)
    retriever = Retriever(settings, kb)
    fused = [c.chunk_id for c in retriever.first_stage(QUESTION).candidates]
    assert len(fused) >= 2
    # a model that prefers the fused order reversed: its best two come first, in fused order
    retriever.use_short_reranker(ShortByFeature("fused_rank", -1.0))
    expected = [*fused[-2:], *fused[-3::-1]]
    assert [c.chunk_id for c in retriever.retrieve(QUESTION).candidates] == expected
    retriever.use_short_reranker(ShortByFeature("fused_rank"))
    assert [c.chunk_id for c in retriever.retrieve(QUESTION).candidates] == fused


def test_turned_off_the_fused_order_stands(settings):
    settings.rerank_short_questions = False
    retriever = Retriever(settings, _kb(settings))
    assert retriever.short_reranker() is None
    fused = [c.chunk_id for c in retriever.first_stage(QUESTION).candidates]
    assert [c.chunk_id for c in retriever.retrieve(QUESTION).candidates] == fused


def test_the_retriever_loads_the_shipped_model(settings):
    assert isinstance(Retriever(settings, _kb(settings)).short_reranker(), ShortQuestionReranker)


def synthetic_groups(seed: int, n: int = 60):
    """Questions of 8 candidates; the relevant one holds most of the rare question words but
    is never first in the fused order."""
    rng = np.random.default_rng(seed)
    groups = []
    for _ in range(n):
        x = rng.uniform(0, 0.6, size=(8, len(SHORT_FEATURES)))
        x[:, 0] = 1.0 / (1.0 + np.arange(8))
        relevant = rng.integers(1, 8)
        x[relevant, SHORT_FEATURES.index("rare_question_share")] = rng.uniform(0.8, 1.0)
        y = np.zeros(8, dtype=bool)
        y[relevant] = True
        groups.append((x, y))
    return groups


def test_fitted_on_some_questions_it_ranks_others_relevant_first(tmp_path):
    model = fit_short_reranker(synthetic_groups(0), {"question_ids": ["q1"]})
    firsts = [int(np.argmax(model.predict(x))) == int(np.argmax(y)) for x, y in synthetic_groups(1)]
    assert np.mean(firsts) > 0.9  # the fused order puts it first in none of them
    path = tmp_path / "model.json"
    path.write_text(model.to_json())
    loaded = ShortQuestionReranker.load(path)
    x = synthetic_groups(2, 1)[0][0]
    assert np.allclose(loaded.predict(x), model.predict(x))
    assert loaded.trained_on == {"question_ids": ["q1"]}


def test_a_model_for_other_features_is_refused(tmp_path):
    path = tmp_path / "model.json"
    data = json.loads(fit_short_reranker(synthetic_groups(0)).to_json())
    path.write_text(json.dumps({**data, "features": list(SHORT_FEATURES[:-1])}))
    with pytest.raises(ValueError, match="train_short_ranker"):
        ShortQuestionReranker.load(path)


def test_nothing_to_learn_from_is_an_error():
    x = np.zeros((3, len(SHORT_FEATURES)))
    with pytest.raises(ValueError, match="relevant"):
        fit_short_reranker([(x, np.zeros(3, dtype=bool)), (x, np.ones(3, dtype=bool))])


def test_held_out_each_question_is_ranked_by_a_fold_that_never_saw_it():
    groups = synthetic_groups(0)
    a = fit_short_reranker(groups, {"question_ids": ["q1", "q2"]})
    b = fit_short_reranker(groups, {"question_ids": ["q2", "q3"]})
    held_out = HeldOutShortRanker([a, b])
    with pytest.raises(ValueError, match="hold_out"):
        held_out.predict(groups[0][0])
    held_out.hold_out("q1")
    assert held_out.current is b
    held_out.hold_out("q3")
    assert held_out.current is a
    with pytest.raises(ValueError, match="q2"):
        held_out.hold_out("q2")


def test_the_shipped_model_records_what_it_was_fitted_on():
    trained = ShortQuestionReranker.load(SHIPPED_SHORT_MODEL).trained_on
    assert trained["n_questions"] == len(trained["question_ids"]) > 0
    assert "train_short_ranker" in trained["command"]


def test_a_question_that_names_sources_keeps_their_interleaved_places(settings):
    from rag.retrieval import SubQuery

    first = Retriever(settings, _kb(settings)).first_stage(QUESTION)
    assert Retriever.short_ranked(first)
    first.plan = [SubQuery(QUESTION), SubQuery(QUESTION, sources=("TechCrunch",))]
    assert not Retriever.short_ranked(first)
    first.plan, first.long = first.plan[:1], True
    assert not Retriever.short_ranked(first)


def test_training_examples_are_the_fused_candidates_labelled_by_evidence(settings):
    from rag_eval.data import Question
    from rag_eval.train_short_ranker import collect, fold_of, measure

    settings.rerank_short_questions = False
    retriever = Retriever(settings, _kb(settings))
    fact = "listens on port 3128"
    asked = Question("q1", QUESTION, ["3128"], True, "number", ["d"], [fact])
    unanswerable = Question("q2", "Who wrote the proxy?", [], False, "t", [], [])
    long = Question(
        "q3", " ".join(["proxy server requests clients disk"] * 5), ["x"], True, "t", ["d"], [fact]
    )
    (example,) = collect(retriever, [asked, unanswerable, long])
    first = retriever.first_stage(QUESTION)
    assert example.units == [(c.doc_id, c.unit_text) for c in first.candidates]
    assert example.labels.tolist() == [fact in text for _, text in example.units]
    assert example.features.shape == (len(example.units), len(SHORT_FEATURES))
    # without a model, the fused order; with one, the learned order
    fused = measure([example], {})
    assert fused["mrr@10"] == 1.0 / (1 + example.labels.tolist().index(True))
    last_first = ShortByFeature("fused_rank", -1.0)
    assert example.ranked(last_first) == [
        example.units[i] for i in learned_order(last_first.predict(example.features))
    ]
    assert {fold_of(f"q{i}") for i in range(50)} == set(range(5))
