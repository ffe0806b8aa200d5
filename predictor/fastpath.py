"""Compiled fast path: predict without scikit-learn's per-call overhead, verified before use.

For linear models and tree ensembles (decision trees, random forests, extra trees, gradient
boosting) the fitted parameters are packed into numpy arrays once, and prediction is a handful of
vectorised operations: all trees of an ensemble are walked level by level at once. A compiled
model is only used after it has answered a set of probe rows exactly as scikit-learn does (labels
identical, probabilities and values within ``TOLERANCE``); otherwise, or for any other estimator,
the predictor uses scikit-learn and says why. Inputs with NaN go to scikit-learn (the trees'
missing-value rules are not compiled).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.special import expit

logger = logging.getLogger(__name__)

TOLERANCE = 1e-9
"""Largest difference allowed between compiled and scikit-learn probabilities or values."""


class Engine(Protocol):
    """What answers requests: scikit-learn itself, or a compiled model."""

    name: str
    takes_frames: bool

    def predict(self, features: Any) -> np.ndarray:
        """Labels (classifiers) or values (regressors)."""
        ...

    def predict_proba(self, features: Any) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        ...


@dataclass
class SklearnEngine:
    """scikit-learn's own predict, for everything the fast path does not compile."""

    estimator: Any
    name: str = "scikit-learn"
    takes_frames: bool = True

    def predict(self, features: Any) -> np.ndarray:
        """``estimator.predict``."""
        return np.asarray(self.estimator.predict(features))

    def predict_proba(self, features: Any) -> np.ndarray:
        """``estimator.predict_proba``."""
        return np.asarray(self.estimator.predict_proba(features))


class CompiledEngine(ABC):
    """Base of compiled models: numpy arrays in, numpy arrays out; NaN goes to scikit-learn."""

    takes_frames = False

    def __init__(self, estimator: Any, name: str) -> None:
        self.estimator = estimator
        self.name = name
        self.classes = np.asarray(getattr(estimator, "classes_", []))

    def predict(self, features: Any) -> np.ndarray:
        """Labels from the probabilities (classifiers) or the values (regressors)."""
        x = np.asarray(features, dtype=np.float64)
        if np.isnan(x).any():
            return np.asarray(self.estimator.predict(x))
        if self.classes.size:
            return self._labels(x)
        return self._values(x)

    def predict_proba(self, features: Any) -> np.ndarray:
        """Class probabilities."""
        x = np.asarray(features, dtype=np.float64)
        if np.isnan(x).any():
            return np.asarray(self.estimator.predict_proba(x))
        return self._proba(x)

    def _labels(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes[np.argmax(self._proba(x), axis=1)])

    @abstractmethod
    def _values(self, x: np.ndarray) -> np.ndarray:
        """Predicted values of a regressor."""

    @abstractmethod
    def _proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities of a classifier."""


class LinearEngine(CompiledEngine):
    """Linear regressors and logistic regression: one matrix product."""

    def __init__(self, estimator: Any) -> None:
        super().__init__(estimator, f"compiled {type(estimator).__name__}")
        self.coef = np.ascontiguousarray(np.atleast_2d(estimator.coef_).T, dtype=np.float64)
        self.intercept = np.asarray(estimator.intercept_, dtype=np.float64)

    def _scores(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x @ self.coef + self.intercept)

    def _values(self, x: np.ndarray) -> np.ndarray:
        scores = self._scores(x)
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def _labels(self, x: np.ndarray) -> np.ndarray:
        scores = self._scores(x)
        if scores.shape[1] == 1:  # binary: scikit-learn picks classes_[1] when the score is > 0
            return np.asarray(self.classes[(scores[:, 0] > 0).astype(int)])
        return np.asarray(self.classes[np.argmax(scores, axis=1)])

    def _proba(self, x: np.ndarray) -> np.ndarray:
        return _probabilities(self._scores(x))


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
        return _probabilities(self._raw(x))


def _probabilities(scores: np.ndarray) -> np.ndarray:
    """Class probabilities from raw scores: one column is a binary logit, more are multinomial."""
    if scores.shape[1] == 1:
        positive = expit(scores[:, 0])
        return np.column_stack([1.0 - positive, positive])
    return _softmax(scores)


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


# Exact classes, by scikit-learn package and name: subclasses may change behaviour, and matching
# by name spares importing every estimator family at start-up.
LINEAR = {
    ("sklearn.linear_model", n)
    for n in ("LinearRegression", "Ridge", "Lasso", "ElasticNet", "LogisticRegression")
}
FORESTS = {
    ("sklearn.ensemble", n)
    for n in (
        "RandomForestClassifier",
        "RandomForestRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
    )
}
TREES = {("sklearn.tree", n) for n in ("DecisionTreeClassifier", "DecisionTreeRegressor")}
BOOSTING = {("sklearn.ensemble", "GradientBoostingClassifier")}


def compile_estimator(estimator: Any) -> CompiledEngine | None:
    """A compiled model for the estimator's exact type, or None when there is none."""
    kind = type(estimator)
    key = (".".join(kind.__module__.split(".")[:2]), kind.__name__)
    if key in LINEAR:
        return LinearEngine(estimator)
    if key in FORESTS:
        return TreeEngine(estimator, [t.tree_ for t in estimator.estimators_], average=True)
    if key in TREES:
        return TreeEngine(estimator, [estimator.tree_], average=True)
    if key in BOOSTING and getattr(estimator, "init", None) is None:
        return BoostingEngine(estimator)
    return None


def choose_engine(
    estimator: Any, probes: Any, *, enabled: bool, is_classifier: bool
) -> tuple[Engine, str]:
    """The engine to serve with, and why: compiled when it matches scikit-learn on ``probes``."""
    fallback = SklearnEngine(estimator)
    if not enabled:
        return fallback, "fast path switched off (PREDICTOR_FAST_PATH=false)"
    compiled = compile_estimator(estimator)
    if compiled is None:
        return fallback, f"no compiled fast path for {type(estimator).__name__}"
    mismatch = verify(compiled, fallback, probes, is_classifier=is_classifier)
    if mismatch is not None:
        return (
            fallback,
            f"compiled {type(estimator).__name__} differs from scikit-learn ({mismatch})",
        )
    return compiled, f"{compiled.name}, verified against scikit-learn on {len(probes)} probe rows"


def verify(
    compiled: CompiledEngine, reference: SklearnEngine, probes: Any, *, is_classifier: bool
) -> str | None:
    """Where the compiled model differs from scikit-learn on ``probes``; None when it does not."""
    rows = np.asarray(probes, dtype=np.float64)

    def chunked(method: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        # small batches take another code path than large ones: check both
        return np.concatenate([method(rows[i : i + 4]) for i in range(0, len(rows), 4)])

    try:
        if is_classifier:
            want = np.asarray(reference.predict(probes))
            for got in (compiled.predict(rows), chunked(compiled.predict)):
                if not np.array_equal(want, np.asarray(got)):
                    return f"{int(np.sum(want != np.asarray(got)))} labels differ"
            expected = reference.predict_proba(probes)
            answers = (compiled.predict_proba(rows), chunked(compiled.predict_proba))
        else:
            expected = reference.predict(probes)
            answers = (compiled.predict(rows), chunked(compiled.predict))
        gap = max(float(np.max(np.abs(expected - answer))) for answer in answers)
    except (ValueError, IndexError, AttributeError) as e:
        return f"{type(e).__name__}: {e}"
    if not gap <= TOLERANCE:
        return f"largest difference {gap:.3g} > {TOLERANCE:g}"
    return None


def probe_rows(
    estimator: Any, n_features: int, extra: list[list[float]], *, count: int = 256, seed: int = 0
) -> np.ndarray:
    """Rows to verify a compiled model on: the bundle's acceptance rows plus synthetic ones.

    For trees the synthetic values sit on and around the split thresholds, where a wrong
    comparison would show; otherwise they are drawn around zero on several scales.
    """
    rng = np.random.default_rng(seed)
    synthetic = rng.normal(size=(count, n_features)) * rng.choice(
        [0.1, 1.0, 10.0, 100.0], size=(count, 1)
    )
    trees = _trees(estimator)
    if trees:
        for j in range(n_features):
            cuts = np.concatenate([t.threshold[t.feature == j] for t in trees])
            if cuts.size:
                picks = rng.choice(cuts, size=count)
                synthetic[:, j] = picks + rng.choice([-1e-3, 0.0, 1e-3], size=count) * np.maximum(
                    np.abs(picks), 1.0
                )
    rows = (
        np.asarray(extra, dtype=np.float64).reshape(-1, n_features)
        if extra
        else np.empty((0, n_features))
    )
    return np.vstack([rows, synthetic])


def _trees(estimator: Any) -> list[Any]:
    if hasattr(estimator, "tree_"):
        return [estimator.tree_]
    members = getattr(estimator, "estimators_", None)
    if members is None:
        return []
    return [m.tree_ for m in np.asarray(members, dtype=object).ravel() if hasattr(m, "tree_")]
