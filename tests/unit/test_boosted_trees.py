"""The trees walked without LightGBM score exactly as LightGBM does (rag.boosted_trees)."""

from __future__ import annotations

import subprocess
import sys

import lightgbm
import numpy as np
import pytest

from rag.boosted_trees import BoostedTrees
from rag.retrieval.reranker import LambdaMARTReranker
from rag.retrieval.reranker.short_questions import ShortQuestionReranker


def rows_with_gaps(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    """Values in [-0.5, 1.5) with zeros and NaNs among them (the cases with their own rule)."""
    rows = rng.random((n, width)) * 2 - 0.5
    rows[rng.random(rows.shape) < 0.15] = 0.0
    rows[rng.random(rows.shape) < 0.1] = np.nan
    return rows


def fitted(rng: np.random.Generator, **params) -> lightgbm.Booster:
    train = rows_with_gaps(rng, 2000, 5)
    labels = (np.nan_to_num(train[:, 0]) + np.nan_to_num(train[:, 1]) > 0.6).astype(int)
    settings = {"objective": "binary", "num_leaves": 15, "verbose": -1, **params}
    return lightgbm.train(settings, lightgbm.Dataset(train, labels), num_boost_round=25)


@pytest.mark.parametrize("zero_as_missing", [False, True])
def test_both_stored_forms_give_lightgbms_scores_bit_for_bit(zero_as_missing):
    rng = np.random.default_rng(0)
    booster = fitted(rng, zero_as_missing=zero_as_missing)
    rows = rows_with_gaps(rng, 500, 5)
    expected = booster.predict(rows, raw_score=True)
    assert expected.std() > 0.5  # the trees do split
    from_text = BoostedTrees.from_model_string(booster.model_to_string())
    from_dump = BoostedTrees.from_dump(booster.dump_model()["tree_info"])
    assert from_text.n_trees == from_dump.n_trees == 25
    assert np.array_equal(from_text.raw_scores(rows), expected)
    assert np.array_equal(from_dump.raw_scores(rows), expected)
    assert np.allclose(from_text.probabilities(rows), booster.predict(rows), rtol=0, atol=1e-15)
    missing = {int(m) for m in from_text.missing.ravel()}
    assert (2 if not zero_as_missing else 1) in missing  # the NaN / zero rule was exercised


def test_a_tree_that_is_one_leaf_adds_its_value_to_every_row():
    rng = np.random.default_rng(1)
    train = rng.random((100, 2))
    booster = lightgbm.train(  # nothing to learn: each tree is one leaf
        {"objective": "regression", "min_data_in_leaf": 200, "verbose": -1},
        lightgbm.Dataset(train, np.full(100, 3.0)),
        num_boost_round=3,
    )
    rows = rng.random((4, 2))
    for trees in (
        BoostedTrees.from_model_string(booster.model_to_string()),
        BoostedTrees.from_dump(booster.dump_model()["tree_info"]),
    ):
        assert np.array_equal(trees.raw_scores(rows), booster.predict(rows))


@pytest.mark.parametrize("ranker", [LambdaMARTReranker, ShortQuestionReranker])
def test_the_shipped_rankers_score_as_lightgbm_does(ranker):
    model = ranker.load()
    booster = lightgbm.Booster(model_str=model.model_text)
    rows = rows_with_gaps(np.random.default_rng(2), 300, len(ranker.FEATURE_NAMES))
    assert np.array_equal(model.predict(rows), booster.predict(rows, num_threads=1))


def test_what_it_cannot_walk_is_refused():
    rng = np.random.default_rng(3)
    train = rng.random((300, 2))
    train[:, 1] = rng.integers(0, 6, 300)
    labels = (train[:, 1] == 2).astype(int)
    categorical = lightgbm.train(
        {"objective": "binary", "verbose": -1, "min_data_per_group": 5, "cat_smooth": 1},
        lightgbm.Dataset(train, labels, categorical_feature=[1]),
        num_boost_round=3,
    )
    with pytest.raises(ValueError, match="categorical"):
        BoostedTrees.from_model_string(categorical.model_to_string())
    with pytest.raises(ValueError, match="categorical"):
        BoostedTrees.from_dump(categorical.dump_model()["tree_info"])
    with pytest.raises(ValueError, match="no trees"):
        BoostedTrees.from_model_string("tree\nnonsense")
    with pytest.raises(ValueError, match="rows × features"):
        BoostedTrees.from_model_string(fitted(rng).model_to_string()).raw_scores(np.zeros(5))


def test_scoring_never_imports_lightgbm():
    """Answering walks the shipped models' trees itself: importing LightGBM (and the pandas it
    imports) would cost every one-shot `rag ask` that time before it could search."""
    code = (
        "import sys, numpy as np\n"
        "from rag.answer.verifier import FittedVerifier, SIGNALS\n"
        "from rag.retrieval.reranker import FEATURES, LambdaMARTReranker\n"
        "from rag.retrieval.reranker.short_questions import SHORT_FEATURES, ShortQuestionReranker\n"
        "LambdaMARTReranker.load().predict(np.zeros((3, len(FEATURES))))\n"
        "ShortQuestionReranker.load().predict(np.zeros((3, len(SHORT_FEATURES))))\n"
        "FittedVerifier.load().probability({name: 0.5 for name in SIGNALS})\n"
        "print(sorted(m for m in ('lightgbm', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
