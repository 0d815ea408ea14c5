"""Training data for the reranker (rag_eval.train_ranker): each long question's pool, as the
retriever builds it for the reranker, labelled by the evidence its sections hold."""

from __future__ import annotations

import numpy as np
from fakes import FakeEmbedding

from rag.knowledge_base import KnowledgeBase
from rag.retrieval import Retriever
from rag.retrieval.reranker import FEATURES, features, fit_lambdamart
from rag_eval.data import Question, corpus_document
from rag_eval.metrics import retrieval_measures
from rag_eval.train_ranker import collect, measure

TEXT = (
    "The harbour bridge opened in March after four years of work. "
    "Engineers tested the cables with heavy trucks before the opening. "
    "The mayor said tolls will fund the maintenance of the bridge. "
    "A ferry service that crossed the harbour stopped the same week. "
    "Local shops near the old ferry pier reported fewer customers. "
    "Cyclists asked for a separate lane, which the council refused. "
    "The council plans a second bridge to the north by 2030."
)
LONG = (
    "After the harbour bridge opened and the ferry service across the harbour stopped, which "
    "request about a separate lane did the cyclists make, and why did the council refuse it?"
)
FACT = "Cyclists asked for a separate lane"


def test_examples_are_the_pools_the_reranker_orders_labelled_by_evidence(settings):
    settings.chunk_size, settings.chunk_overlap, settings.section_chunks = 16, 0, 3
    settings.rerank_pool, settings.rerank_expand_docs = 2, 1
    kb = KnowledgeBase(settings, FakeEmbedding())
    kb.add_documents([corpus_document({"doc_id": "d", "text": TEXT})])
    retriever = Retriever(settings, kb)
    long = Question("q1", LONG, ["council"], True, "inference_query", ["d"], [FACT])
    short = Question("q2", "Why did the council refuse a lane?", ["x"], True, "t", ["d"], [FACT])
    long_example, short_example = collect(retriever, [long, short])

    pool = retriever.pool(retriever.first_stage(LONG))
    units = [pool.section(j).get_content(metadata_mode="none") for j in range(len(pool))]
    assert long_example.pool_units == [("d", text) for text in units]
    assert np.array_equal(long_example.features, features(pool.signals))
    assert long_example.features.shape == (len(pool), len(FEATURES))
    assert long_example.labels.tolist() == [FACT in text for text in units]
    assert long_example.labels.sum() == 1
    assert short_example.features is None  # a short question is not reranked
    first = [(c.doc_id, c.unit_text) for c in retriever.first_stage(short.text).candidates]
    assert short_example.ranked(None) == short_example.first_units == first

    # measured like `rag eval`: without a model, the first stage's ranking
    found = measure([long_example, short_example], None)
    expected = retrieval_measures(long, long_example.first_units)
    assert found["inference_query"]["hits@10"] == expected["hits@10"]
    assert set(found) == {"all", "inference_query", "t"}
    # with a model, the pool in the model's order
    rng = np.random.default_rng(0)
    groups = [(rng.normal(size=(6, len(FEATURES))), np.arange(6) == 0) for _ in range(20)]
    model = fit_lambdamart(groups, rounds=3, num_leaves=3, min_data_in_leaf=5)
    order = np.argsort(-model.predict(long_example.features), kind="stable")
    assert long_example.ranked(model) == [long_example.pool_units[j] for j in order]
