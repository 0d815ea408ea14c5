"""The learned ranking: its features, weights file and training, on hand-made signals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.rank import FEATURES, LinearRanker, PoolSignals, features, fit_listwise


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


def test_weights_round_trip_and_refuse_other_features(tmp_path):
    rng = np.random.default_rng(0)
    ranker = LinearRanker(
        rng.normal(size=len(FEATURES)), rng.normal(size=len(FEATURES)), np.ones(len(FEATURES)), {}
    )
    path = tmp_path / "weights.json"
    path.write_text(ranker.to_json())
    matrix = features(signals())
    assert np.allclose(LinearRanker.load(path).score(matrix), ranker.score(matrix), atol=1e-4)
    data = json.loads(path.read_text())
    data["features"] = data["features"][:-1]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"retrain them with evals/train_ranker\.py"):
        LinearRanker.load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read ranker weights"):
        LinearRanker.load(path)


def test_the_shipped_weights_fit_the_code():
    ranker = LinearRanker.load()
    assert ranker.weights.shape == (len(FEATURES),) and np.all(ranker.scale > 0)
    assert ranker.trained_on.get("n_questions", 0) > 0


def test_listwise_fitting_learns_which_signal_marks_the_evidence():
    rng = np.random.default_rng(1)

    def group() -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(12, 3))
        relevant = np.zeros(12, dtype=bool)
        relevant[np.argmax(x[:, 1] - 0.3 * x[:, 2])] = True  # the signal, and a weak negative
        return x, relevant

    ranker = fit_listwise([group() for _ in range(60)], steps=300)
    assert np.argmax(ranker.weights) == 1 and ranker.weights[2] < 0
    tests = [group() for _ in range(100)]
    first = [relevant[np.argmax(ranker.score(x))] for x, relevant in tests]
    assert np.mean(first) > 0.9
    with pytest.raises(ValueError, match="no question has a relevant candidate"):
        fit_listwise([(np.zeros((3, 3)), np.zeros(3, dtype=bool))])
