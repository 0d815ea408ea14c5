"""Boosted trees fitted by LightGBM, evaluated without it.

The rankers and the verifier are LightGBM models fitted offline by `rag_eval`. Answering a
question only needs the sums of their trees' leaves, and importing LightGBM (which also imports
pandas when it is installed) would cost every one-shot `rag ask` that time before it can search.
So the trees are read from their stored form and walked here, all rows through all trees at
once; the decision rule and the order of summation are LightGBM's, so the scores are those
`Booster.predict` gives.

Two stored forms are read: LightGBM's text model (`Booster.model_to_string()`, which the rankers'
files hold) and its JSON dump (`Booster.dump_model()["tree_info"]`, which the verifier's holds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# LightGBM's kZeroThreshold, a float: below it a value counts as zero for "Zero" missing splits.
ZERO_THRESHOLD = float(np.float32(1e-35))
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
_MISSING_NAMES = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}
# bits of a node's decision_type in the text model
_CATEGORICAL_BIT, _DEFAULT_LEFT_BIT = 1, 2


@dataclass(frozen=True)
class BoostedTrees:
    """Trees as flat (trees × nodes) arrays. A child index >= 0 is a split node of the same tree,
    a negative one `~leaf`; a tree that is a single leaf has the root `~0`."""

    feature: np.ndarray
    threshold: np.ndarray
    default_left: np.ndarray
    missing: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf_value: np.ndarray  # (trees × leaves)
    root: np.ndarray  # (trees,)

    @property
    def n_trees(self) -> int:
        return len(self.root)

    def raw_scores(self, matrix: np.ndarray) -> np.ndarray:
        """Each row's sum of leaves (a ranker's score, a classifier's log-odds)."""
        rows = np.asarray(matrix, dtype=np.float64)
        if rows.ndim != 2:
            raise ValueError(f"expected rows × features, got shape {rows.shape}")
        n = rows.shape[0]
        node = np.repeat(self.root[:, None], n, axis=1)
        while True:
            tree_index, row_index = np.nonzero(node >= 0)
            if not len(tree_index):
                break
            at = node[tree_index, row_index]
            value = rows[row_index, self.feature[tree_index, at]]
            missing = self.missing[tree_index, at]
            is_nan = np.isnan(value)
            value = np.where(is_nan & (missing != MISSING_NAN), 0.0, value)
            default = ((missing == MISSING_ZERO) & (np.abs(value) <= ZERO_THRESHOLD)) | (
                (missing == MISSING_NAN) & is_nan
            )
            below = value <= self.threshold[tree_index, at]  # a NaN left here goes its default way
            go_left = np.where(default, self.default_left[tree_index, at], below)
            node[tree_index, row_index] = np.where(
                go_left, self.left[tree_index, at], self.right[tree_index, at]
            )
        leaves = self.leaf_value[np.arange(self.n_trees)[:, None], ~node]
        total = np.zeros(n)
        for per_tree in leaves:  # tree by tree, as LightGBM adds them
            total += per_tree
        return total

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """A binary classifier's probabilities: the logistic of the raw scores."""
        return 1.0 / (1.0 + np.exp(-self.raw_scores(matrix)))

    # ---------------------------------------------------------------------------- reading

    @classmethod
    def from_model_string(cls, text: str) -> BoostedTrees:
        """LightGBM's text model (one score per row: a binary or ranking objective)."""
        header, *blocks = text.split("end of trees", 1)[0].split("\nTree=")
        if _key_values(header).get("num_tree_per_iteration", "1") != "1":
            raise ValueError("only models with one tree per iteration are supported")
        trees = []
        for block in blocks:
            values = _key_values(block)
            if values.get("num_cat", "0") != "0" or values.get("is_linear", "0") != "0":
                raise ValueError("categorical splits and linear trees are not supported")
            leaves = [float(v) for v in values["leaf_value"].split()]
            if int(values["num_leaves"]) == 1:
                trees.append(_Tree([], [], [], [], [], [], leaves))
                continue
            decision = [int(v) for v in values["decision_type"].split()]
            if any(d & _CATEGORICAL_BIT for d in decision):
                raise ValueError("categorical splits are not supported")
            trees.append(
                _Tree(
                    feature=[int(v) for v in values["split_feature"].split()],
                    threshold=[float(v) for v in values["threshold"].split()],
                    default_left=[bool(d & _DEFAULT_LEFT_BIT) for d in decision],
                    missing=[(d >> 2) & 3 for d in decision],
                    left=[int(v) for v in values["left_child"].split()],
                    right=[int(v) for v in values["right_child"].split()],
                    leaf_value=leaves,
                )
            )
        if not trees:
            raise ValueError("no trees in the model")
        return _stack(trees)

    @classmethod
    def from_dump(cls, tree_info: Sequence[dict[str, Any]]) -> BoostedTrees:
        """LightGBM's JSON dump (`dump_model()["tree_info"]`)."""
        trees = [_from_dump_node(tree["tree_structure"]) for tree in tree_info]
        if not trees:
            raise ValueError("no trees in the model")
        return _stack(trees)


@dataclass
class _Tree:
    feature: list[int]
    threshold: list[float]
    default_left: list[bool]
    missing: list[int]
    left: list[int]
    right: list[int]
    leaf_value: list[float]


def _key_values(block: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in block.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def _from_dump_node(root: dict[str, Any]) -> _Tree:
    if "leaf_value" in root:
        return _Tree([], [], [], [], [], [], [float(root["leaf_value"])])
    splits: dict[int, dict[str, Any]] = {}
    leaves: dict[int, float] = {}

    def index(node: dict[str, Any]) -> int:
        if "leaf_value" in node:
            leaves[int(node["leaf_index"])] = float(node["leaf_value"])
            return ~int(node["leaf_index"])
        if node.get("decision_type", "<=") != "<=":
            raise ValueError("categorical splits are not supported")
        splits[int(node["split_index"])] = node
        return int(node["split_index"])

    pending = [root]
    index(root)
    children: dict[int, tuple[int, int]] = {}
    while pending:
        node = pending.pop()
        children[int(node["split_index"])] = (index(node["left_child"]), index(node["right_child"]))
        pending += [c for c in (node["left_child"], node["right_child"]) if "leaf_value" not in c]
    order = sorted(splits)
    return _Tree(
        feature=[int(splits[i]["split_feature"]) for i in order],
        threshold=[float(splits[i]["threshold"]) for i in order],
        default_left=[bool(splits[i]["default_left"]) for i in order],
        missing=[_MISSING_NAMES[splits[i].get("missing_type", "None")] for i in order],
        left=[children[i][0] for i in order],
        right=[children[i][1] for i in order],
        leaf_value=[leaves[i] for i in sorted(leaves)],
    )


def _stack(trees: list[_Tree]) -> BoostedTrees:
    nodes = max(1, max(len(t.feature) for t in trees))
    n_leaves = max(len(t.leaf_value) for t in trees)

    def pad(name: str, dtype: Any, width: int) -> np.ndarray:
        out = np.zeros((len(trees), width), dtype=dtype)
        for i, tree in enumerate(trees):
            values = getattr(tree, name)
            out[i, : len(values)] = values
        return out

    return BoostedTrees(
        feature=pad("feature", np.int64, nodes),
        threshold=pad("threshold", np.float64, nodes),
        default_left=pad("default_left", bool, nodes),
        missing=pad("missing", np.int8, nodes),
        left=pad("left", np.int64, nodes),
        right=pad("right", np.int64, nodes),
        leaf_value=pad("leaf_value", np.float64, n_leaves),
        root=np.array([0 if t.feature else ~0 for t in trees], dtype=np.int64),
    )
