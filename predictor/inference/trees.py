"""Compiled tree ensembles: decision trees, random forests, extra trees, gradient boosting.

Inputs are compared as float32, as scikit-learn compares them. Batches of up to ``WALK_ROWS`` rows
walk every tree at once, one level per step, in numpy; larger ones go tree by tree through
scikit-learn's compiled ``Tree.predict`` (still without the estimator's per-call overhead).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from predictor.inference.engines import CompiledEngine, probabilities

FORESTS = {
    ("sklearn.ensemble", n)
    for n in (
        "RandomForestClassifier",
        "RandomForestRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
    )
}
"""Forests by scikit-learn package and class name (exact classes: subclasses may differ)."""
TREES = {("sklearn.tree", n) for n in ("DecisionTreeClassifier", "DecisionTreeRegressor")}
"""Single decision trees, likewise."""

WALK_ROWS = 256
"""Up to this many rows all trees are walked at once in numpy (measured faster than tree by tree
up to about 400 rows of a 100-tree forest); above it, tree by tree through scikit-learn."""


class TreeEngine(CompiledEngine):
    """Tree ensembles on float32 inputs, as scikit-learn compares them.

    All trees live in flat arrays. A leaf points to itself on both sides, so a walk of ``depth``
    steps needs no per-row bookkeeping: rows that reached a leaf early stay there.
    """

    def __init__(
        self, estimator: Any, trees: list[Any], *, average: bool, scale: float = 1.0
    ) -> None:
        super().__init__(estimator, f"compiled {type(estimator).__name__} ({len(trees)} trees)")
        self.trees = trees
        offsets = np.cumsum([0] + [t.node_count for t in trees[:-1]])
        self.roots = offsets.astype(np.intp)
        left = np.concatenate([t.children_left + o for t, o in zip(trees, offsets, strict=True)])
        right = np.concatenate([t.children_right + o for t, o in zip(trees, offsets, strict=True)])
        leaf = np.concatenate([t.children_left < 0 for t in trees])
        node = np.arange(leaf.size)
        self.feature = np.where(leaf, 0, np.concatenate([t.feature for t in trees])).astype(np.intp)
        self.threshold = np.concatenate([t.threshold for t in trees])
        # children[2 * n] is where node n goes when x <= threshold, children[2 * n + 1] otherwise
        self.children = (
            np.column_stack([np.where(leaf, node, left), np.where(leaf, node, right)])
            .astype(np.intp)
            .ravel()
        )
        values = np.concatenate([t.value[:, 0, :] for t in trees])
        self.normalize = bool(self.classes.size and average)  # classifier leaves: class fractions
        if self.normalize:
            sums = values.sum(axis=1, keepdims=True)
            self.normalize = not np.allclose(sums, 1.0, rtol=0, atol=1e-12)
            values = values / sums
        self.values = values
        self.depth = max(int(t.max_depth) for t in trees)
        self.average = average
        self.scale = scale

    def _leaves(self, x: np.ndarray) -> np.ndarray:
        """The leaf each row reaches in each tree: ``(rows, trees)`` node indices."""
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        n_rows, width = x32.shape
        flat = x32.ravel()
        row_start = (np.arange(n_rows, dtype=np.intp) * width)[:, None]
        node = np.tile(self.roots, (n_rows, 1))
        for _ in range(self.depth):
            goes_right = flat.take(self.feature.take(node) + row_start) > self.threshold.take(node)
            node = self.children.take(node * 2 + goes_right)
        return node

    def _summed(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] > WALK_ROWS:
            return self._summed_per_tree(x)
        leaves = self._leaves(x)
        total = self.values[leaves].sum(axis=1)
        return np.asarray(total / leaves.shape[1] if self.average else total * self.scale)

    def _summed_per_tree(self, x: np.ndarray) -> np.ndarray:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        total = np.zeros((x32.shape[0], self.values.shape[1]))
        for tree in self.trees:
            value = tree.predict(x32)  # (rows, classes) for one output
            value = value[:, 0, :] if value.ndim == 3 else value
            if self.normalize:
                value = value / value.sum(axis=1, keepdims=True)
            total += value
        return np.asarray(total / len(self.trees) if self.average else total * self.scale)

    def _values(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._summed(x)[:, 0])

    def _proba(self, x: np.ndarray) -> np.ndarray:
        return self._summed(x)


class BoostingEngine(CompiledEngine):
    """Gradient boosting classifiers: raw score = prior + learning rate x sum of stage trees."""

    def __init__(self, estimator: Any) -> None:
        stages = estimator.estimators_
        super().__init__(estimator, f"compiled {type(estimator).__name__} ({stages.size} trees)")
        self.per_class = [
            TreeEngine(
                estimator,
                [stages[s, k].tree_ for s in range(stages.shape[0])],
                average=False,
                scale=estimator.learning_rate,
            )
            for k in range(stages.shape[1])
        ]
        probe = np.zeros((1, estimator.n_features_in_))
        self.init = np.asarray(estimator._raw_predict_init(probe))[0]  # a constant prior; verified

    def _raw(self, x: np.ndarray) -> np.ndarray:
        summed = np.column_stack([engine._summed(x)[:, 0] for engine in self.per_class])
        return np.asarray(summed + self.init)

    def _values(self, x: np.ndarray) -> np.ndarray:
        return self._raw(x)

    def _proba(self, x: np.ndarray) -> np.ndarray:
        return probabilities(self._raw(x))


def tree_structures(estimator: Any) -> list[Any]:
    """The fitted ``Tree`` objects of a tree or tree ensemble (empty for other estimators)."""
    if hasattr(estimator, "tree_"):
        return [estimator.tree_]
    members = getattr(estimator, "estimators_", None)
    if members is None:
        return []
    return [m.tree_ for m in np.asarray(members, dtype=object).ravel() if hasattr(m, "tree_")]
