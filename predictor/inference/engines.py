"""What answers requests: scikit-learn itself, or a compiled model of numpy arrays.

``SklearnEngine`` wraps the estimator. ``CompiledEngine`` is the base of compiled models (numpy
in, numpy out; rows with NaN go to scikit-learn); ``LinearEngine`` compiles linear models and
logistic regression. Tree ensembles are in ``predictor.inference.trees``, the ONNX Runtime engine
in ``predictor.inference.native``; choosing and verifying an engine is
``predictor.inference.fastpath``. ``EngineSlot`` holds the engine that answers, and lets a better
one take over while the model serves.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.special import expit


class Engine(Protocol):
    """What answers requests: scikit-learn itself, or a compiled model."""

    @property
    def name(self) -> str:
        """Which engine this is, for logs, metrics and the home page."""
        ...

    @property
    def takes_frames(self) -> bool:
        """Whether it wants a DataFrame (else a float array)."""
        ...

    def predict(self, features: Any) -> np.ndarray:
        """Labels (classifiers) or values (regressors)."""
        ...

    def predict_proba(self, features: Any) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        ...

    def predict_and_proba(self, features: Any) -> tuple[np.ndarray, np.ndarray]:
        """Labels and class probabilities together (computed once where the engine can)."""
        ...

    def output(self, name: str, features: Any) -> Any:
        """Any other output (``decision_function``, ``score_samples``, ``transform``)."""
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

    def predict_and_proba(self, features: Any) -> tuple[np.ndarray, np.ndarray]:
        """``estimator.predict`` and ``estimator.predict_proba``, each asked.

        Not every estimator's label is its most probable class (SVC's, for one).
        """
        return self.predict(features), self.predict_proba(features)

    def output(self, name: str, features: Any) -> Any:
        """The estimator's own method of that name."""
        return getattr(self.estimator, name)(features)


class EngineSlot:
    """The engine that answers now, and why; ``switch`` hands over to another between two calls.

    The batchers hold the slot, so a switch takes effect at the next batch. An engine switched
    in must take what the current one takes (a native engine takes frames and arrays alike).
    """

    def __init__(self, engine: Engine, reason: str) -> None:
        self.engine = engine
        self.reason = reason
        self.switched = False
        """Whether another engine has taken over since the model loaded."""

    @property
    def name(self) -> str:
        """The current engine's name."""
        return self.engine.name

    @property
    def takes_frames(self) -> bool:
        """Whether the current engine wants a DataFrame (else a float array)."""
        return self.engine.takes_frames

    def switch(self, engine: Engine, reason: str) -> None:
        """Answer with ``engine`` from the next call on."""
        self.engine, self.reason, self.switched = engine, reason, True

    def predict(self, features: Any) -> np.ndarray:
        """The current engine's ``predict``."""
        return self.engine.predict(features)

    def predict_proba(self, features: Any) -> np.ndarray:
        """The current engine's ``predict_proba``."""
        return self.engine.predict_proba(features)

    def predict_and_proba(self, features: Any) -> tuple[np.ndarray, np.ndarray]:
        """The current engine's ``predict_and_proba``."""
        return self.engine.predict_and_proba(features)

    def output(self, name: str, features: Any) -> Any:
        """The current engine's other outputs."""
        return self.engine.output(name, features)


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
        if has_nan(x):
            return np.asarray(self.estimator.predict(x))
        if self.classes.size:
            return self._labels(x)
        return self._values(x)

    def predict_proba(self, features: Any) -> np.ndarray:
        """Class probabilities."""
        x = np.asarray(features, dtype=np.float64)
        if has_nan(x):
            return np.asarray(self.estimator.predict_proba(x))
        return self._proba(x)

    def predict_and_proba(self, features: Any) -> tuple[np.ndarray, np.ndarray]:
        """Labels and probabilities from one evaluation of the model."""
        x = np.asarray(features, dtype=np.float64)
        if has_nan(x):
            return self.predict(x), self.predict_proba(x)
        proba = self._proba(x)
        return self._labels_given(x, proba), proba

    def output(self, name: str, features: Any) -> Any:
        """Outputs that are not compiled come from scikit-learn, given what it was fitted on."""
        x = np.asarray(features, dtype=np.float64)
        names = getattr(self.estimator, "feature_names_in_", None)
        if names is not None:
            import pandas as pd

            return getattr(self.estimator, name)(pd.DataFrame(x, columns=list(names)))
        return getattr(self.estimator, name)(x)

    def _labels(self, x: np.ndarray) -> np.ndarray:
        return self._labels_given(x, self._proba(x))

    def _labels_given(self, x: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """Labels, knowing the probabilities: the most probable class.

        That is how scikit-learn's forests and gradient boosting pick them.
        """
        return np.asarray(self.classes[np.argmax(proba, axis=1)])

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
        scores: np.ndarray = x @ self.coef
        scores += self.intercept
        return scores

    def _values(self, x: np.ndarray) -> np.ndarray:
        scores = self._scores(x)
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def _labels_given(self, x: np.ndarray, proba: np.ndarray) -> np.ndarray:
        return self._labels(x)  # from the scores, as scikit-learn decides (not from rounded p)

    def _labels(self, x: np.ndarray) -> np.ndarray:
        scores = self._scores(x)
        if scores.shape[1] == 1:  # binary: scikit-learn picks classes_[1] when the score is > 0
            labels: np.ndarray = self.classes.take(scores[:, 0] > 0)
        else:
            labels = self.classes.take(np.argmax(scores, axis=1))
        return labels

    def _proba(self, x: np.ndarray) -> np.ndarray:
        return probabilities(self._scores(x))


def has_nan(x: np.ndarray) -> bool:
    """Whether a float array holds a NaN (such rows go to scikit-learn, which knows them).

    The minimum is NaN exactly when a value is: one reduction, no mask, no warning.
    """
    return bool(x.size) and math.isnan(np.minimum.reduce(x, axis=None))


def probabilities(scores: np.ndarray) -> np.ndarray:
    """Class probabilities from raw scores: one column is a binary logit, more are multinomial."""
    if scores.shape[1] == 1:
        positive = expit(scores[:, 0])
        return np.column_stack([1.0 - positive, positive])
    return _softmax(scores)


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))
