"""Compiled tree ensembles: decision trees, random forests, extra trees, gradient boosting.

Inputs are compared as float32, as scikit-learn compares them. Small batches walk every tree at
once, one level per step, in numpy; larger ones go tree by tree through scikit-learn's compiled
``Tree.predict`` (still without the estimator's per-call overhead).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from predictor.engines import CompiledEngine, probabilities

SMALL_BATCH = 16
"""Up to this many rows all trees are walked at once in numpy; above it, tree by tree through
scikit-learn's compiled ``Tree.predict`` (still without the estimator's per-call overhead)."""


class TreeEngine(CompiledEngine):
    """Tree ensembles on float32 inputs, as scikit-learn compares them.

    Small batches walk every tree at once, one level per step; large batches go tree by tree.
    """

    def __init__(
        self, estimator: Any, trees: list[Any], *, average: bool, scale: float = 1.0
    ) -> None:
        super().__init__(estimator, f"compiled {type(estimator).__name__} ({len(trees)} trees)")
        self.trees = trees
        offsets = np.cumsum([0] + [t.node_count for t in trees[:-1]])
        self.roots = offsets.astype(np.intp)
        self.feature = np.concatenate([np.maximum(t.feature, 0) for t in trees]).astype(np.intp)
        self.threshold = np.concatenate([t.threshold for t in trees])
        self.left = np.concatenate(
            [
                np.where(t.children_left < 0, -1, t.children_left + o)
                for t, o in zip(trees, offsets, strict=True)
            ]
        ).astype(np.intp)
        self.right = np.concatenate(
            [
                np.where(t.children_right < 0, -1, t.children_right + o)
                for t, o in zip(trees, offsets, strict=True)
            ]
        ).astype(np.intp)
        self.leaf = self.left < 0
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
        x32 = x.astype(np.float32)
        rows = np.arange(x32.shape[0])[:, None]
        node = np.broadcast_to(self.roots, (x32.shape[0], self.roots.size)).copy()
        for _ in range(self.depth):
            leaf = self.leaf[node]
            if leaf.all():
                break
            go_left = x32[rows, self.feature[node]] <= self.threshold[node]
            step = np.where(go_left, self.left[node], self.right[node])
            node = np.where(leaf, node, step)
        return node

    def _summed(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] > SMALL_BATCH:
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
