"""The reranker: the LambdaMART model's features, model file and training, on hand-made signals
and synthetic questions."""

from __future__ import annotations

import json

import lightgbm
import numpy as np
import pytest

from rag.retrieval.pool import Pool, PoolSignals
from rag.retrieval.reranker import (
    FEATURES,
    SHIPPED_MODEL,
    LambdaMARTReranker,
    Reranker,
    features,
    fit_lambdamart,
    trained_on,
)
from rag_eval.heldout import HeldOutRanker


def column(matrix: np.ndarray, name: str) -> list[float]:
    return matrix[:, FEATURES.index(name)].round(6).tolist()


def signals(**changes) -> PoolSignals:
    """Plan: the whole question, two claims, the question restricted to a publisher.
    Four sections: a0, a1 (article a), b0, b1 (article b); a1 was only added with its article."""
    values = dict(
        is_claim=[False, True, True, False],
        is_sourced_question=[False, False, False, True],
        section_keywords=np.array(
            [
                [1.0, 0.2, 0.5, 0.1],  # whole question
                [0.9, 0.1, 0.0, 0.0],  # claim 1: a0
                [0.0, 0.3, 0.2, 0.4],  # claim 2: b1
                [0.0, 0.0, 0.6, 0.7],  # question, publisher of b
            ]
        ),
        chunk_keywords=np.array(
            [
                [0.8, 0.2, 0.4, 0.1],
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 0.6, 0.1, 0.5],
                [0.0, 0.0, 0.5, 0.5],
            ]
        ),
        cosine=np.array(
            [
                [0.5, 0.3, 0.4, 0.2],
                [0.6, 0.1, 0.2, 0.1],
                [0.1, 0.2, 0.3, 0.7],
                [0.5, 0.3, 0.4, 0.2],
            ]
        ),
        doc_ids=["a", "a", "b", "b"],
        from_named_source=np.array([False, False, True, True]),
        in_named_date_window=np.array([False, False, False, True]),
        position=np.array([0, 1, 0, 1]),
        sections_in_article=np.array([2, 2, 3, 3]),
        first_stage=np.array([True, False, True, True]),
    )
    values.update(changes)
    return PoolSignals(**values)


def pool_of(s: PoolSignals, question: str = "q") -> Pool:
    """A pool with these signals (the LambdaMART model reads nothing else of it)."""
    n = len(s.doc_ids)
    return Pool(question, None, list(range(n)), s, [], [], np.zeros((1, 0)), np.zeros(0))


def test_features_measure_each_section_against_the_claims_and_its_article():
    matrix = features(signals())
    assert matrix.shape == (4, len(FEATURES))
    # a0 is claim 1's best match by chunk keywords; b1 is claim 2's by keywords + cosine
    assert column(matrix, "best_claim_rank_chunk_keywords")[0] == 1.0
    assert column(matrix, "best_claim_rank_chunk_keywords_and_cosine")[3] == 1.0
    # b0 is second for claim 1 (its best rank): 1 / (1 + 1)
    assert column(matrix, "best_claim_rank_chunk_keywords_and_cosine")[2] == 0.5
    assert column(matrix, "claim_keywords") == [0.9, 0.3, 0.2, 0.4]
    assert column(matrix, "question_keywords") == [1.0, 0.2, 0.5, 0.1]
    assert column(matrix, "question_keywords_in_named_source") == [0.0, 0.0, 0.6, 0.7]
    # 0 for the section closest to some claim, negative for the others
    assert column(matrix, "claim_cosine_below_best") == [0.0, -0.5, -0.4, 0.0]
    assert column(matrix, "from_named_source") == [0.0, 0.0, 1.0, 1.0]
    assert column(matrix, "in_named_date_window") == [0.0, 0.0, 0.0, 1.0]
    assert column(matrix, "position_in_article") == [0.0, 1.0, 0.0, 0.5]
    assert column(matrix, "first_section") == [1.0, 0.0, 1.0, 0.0]
    # a1 was not in the first stage: article a counts once, article b twice
    assert column(matrix, "article_share_of_first_stage") == [0.2, 0.2, 0.4, 0.4]
    assert column(matrix, "article_best_claim_match") == [1.6, 1.6, 1.2, 1.2]


def test_a_question_without_claims_uses_the_whole_question_in_their_place():
    matrix = features(signals(is_claim=[False] * 4, is_sourced_question=[False] * 4))
    assert column(matrix, "claim_keywords") == column(matrix, "question_keywords")
    assert column(matrix, "claim_cosine") == column(matrix, "question_cosine")
    assert column(matrix, "question_keywords_in_named_source") == [1.0, 0.2, 0.5, 0.1]
    ranks = column(matrix, "best_claim_rank_chunk_keywords")
    assert ranks == pytest.approx([1.0, 1 / 3, 0.5, 0.25], abs=1e-6)


def synthetic_groups(rng, n: int, width: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """Questions of 12 candidates; the relevant one is where column 1 (less a little of column
    2) is highest, so one signal marks the evidence and another weakly counts against it."""
    groups = []
    for _ in range(n):
        x = rng.normal(size=(12, width))
        relevant = np.zeros(12, dtype=bool)
        relevant[np.argmax(x[:, 1] - 0.3 * x[:, 2])] = True
        groups.append((x, relevant))
    return groups


SMALL = {"num_leaves": 4, "min_data_in_leaf": 5}  # for a few hundred rows, not 190,000


def small_model(trained_on: dict | None = None) -> LambdaMARTReranker:
    rng = np.random.default_rng(0)
    return fit_lambdamart(
        synthetic_groups(rng, 30, len(FEATURES)), trained_on=trained_on, rounds=10, **SMALL
    )


def test_lambdamart_learns_which_signal_marks_the_evidence():
    rng = np.random.default_rng(1)
    ranker = fit_lambdamart(synthetic_groups(rng, 200), rounds=60, **SMALL)
    gains = lightgbm.Booster(model_str=ranker.model_text).feature_importance("gain")
    assert np.argmax(gains) == 1
    tests = synthetic_groups(rng, 100)
    first = [relevant[np.argmax(ranker.predict(x))] for x, relevant in tests]
    assert np.mean(first) > 0.8  # chance: 1 in 12
    with pytest.raises(ValueError, match="no question has both a relevant and another"):
        fit_lambdamart([(np.zeros((3, 3)), np.zeros(3, dtype=bool))])


def test_a_model_round_trips_and_other_features_or_a_broken_file_are_refused(tmp_path):
    ranker = small_model({"questions_sha256_12": "abc"})
    path = tmp_path / "ranker.json"
    path.write_text(ranker.to_json())
    loaded = LambdaMARTReranker.load(path)
    matrix = features(signals())
    assert np.allclose(loaded.predict(matrix), ranker.predict(matrix))
    assert loaded.trained_on == {"questions_sha256_12": "abc"}
    assert trained_on(path) == {"questions_sha256_12": "abc"}  # read without building trees
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "features": data["features"][:-1]}))
    with pytest.raises(ValueError, match=r"retrain it with `python -m rag_eval\.train_ranker`"):
        LambdaMARTReranker.load(path)
    with pytest.raises(ValueError, match="other features"):
        trained_on(path)
    for broken in ("{not json", json.dumps({"features": list(FEATURES)}), "[1, 2]"):
        path.write_text(broken)
        with pytest.raises(ValueError, match="cannot read ranker model"):
            LambdaMARTReranker.load(path)
    path.write_text(json.dumps({**data, "lightgbm_model": "tree\nnonsense"}))
    with pytest.raises(ValueError, match="cannot read ranker model"):
        LambdaMARTReranker.load(path)


def test_the_shipped_model_fits_the_code():
    ranker = LambdaMARTReranker.load()
    assert SHIPPED_MODEL.name == "lambdamart.json" and SHIPPED_MODEL.is_file()
    assert f"feature_names={' '.join(FEATURES)}\n" in ranker.model_text
    assert ranker.trained_on.get("n_questions", 0) > 0
    assert trained_on() == ranker.trained_on
    assert ranker.predict(features(signals())).shape == (4,)


def test_the_reranker_scores_a_pool_by_its_signals():
    ranker = small_model()
    assert isinstance(ranker, Reranker)
    pool = pool_of(signals())
    scores = ranker.score("any question", pool)
    assert scores.shape == (len(pool),) == (4,)
    assert np.array_equal(scores, ranker.predict(features(signals())))


def test_held_out_ranking_uses_a_fold_that_never_saw_the_question():
    first = small_model({"question_ids": ["q1", "q2"]})
    other = fit_lambdamart(  # another model, so the two folds score differently
        synthetic_groups(np.random.default_rng(5), 30, len(FEATURES)), rounds=10, **SMALL
    )
    second = LambdaMARTReranker(other.model_text, {"question_ids": ["q3"]})
    held_out = HeldOutRanker([first, second])  # the eval's reranker (rag_eval.heldout)
    assert isinstance(held_out, Reranker)
    pool = pool_of(signals())
    with pytest.raises(ValueError, match="hold_out"):
        held_out.score("q", pool)
    held_out.hold_out("q1")
    assert np.array_equal(held_out.score("q", pool), second.score("q", pool))
    assert not np.array_equal(held_out.score("q", pool), first.score("q", pool))
    held_out.hold_out("q3")
    assert np.array_equal(held_out.score("q", pool), first.score("q", pool))
    held_out.hold_out("q9")  # in no fold's training: any fold is held out for it
    assert held_out.current is first
    with pytest.raises(ValueError, match="every fold model was fitted on question q1"):
        HeldOutRanker([first, first]).hold_out("q1")
