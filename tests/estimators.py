"""Small estimators with scikit-learn's API whose failures the tests choose (importable by pickles)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

BAD_INPUT = 777.0
"""A value the estimator refuses as bad data (``TypeError``, as many estimators raise)."""
BROKEN = 666.0
"""A value on which the estimator itself breaks (``RuntimeError``: its fault, not the caller's)."""


class ChoosyRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """Predicts the row sum; raises on the values above, quoting a value in its message."""

    def fit(self, x: Any, y: Any) -> ChoosyRegressor:
        self.n_features_in_ = np.asarray(x).shape[1]
        return self

    def predict(self, x: Any) -> np.ndarray:
        values = np.asarray(x, dtype=np.float64)
        if (values == BAD_INPUT).any():
            raise TypeError(f"unorderable types: '{values.tolist()}' and 'float'")
        if (values == BROKEN).any():
            raise RuntimeError(f"lookup failed for the row {values.tolist()}")
        sums: np.ndarray = values.sum(axis=1)
        return sums


def none_as_word(table: Any) -> Any:
    """Names ``None`` "none" and NaN "nan": a step that tells the two missing markers apart."""
    return table.map(lambda v: "none" if v is None else "nan" if v != v else v)


class SlowedClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """``inner``'s answers, each call ``delay_s`` later: a canary right but slow."""

    def __init__(self, inner: Any = None, delay_s: float = 0.03) -> None:
        self.inner = inner
        self.delay_s = delay_s

    def fit(self, x: Any, y: Any) -> SlowedClassifier:
        self.inner.fit(x, y)
        return self

    @property
    def classes_(self) -> Any:
        return self.inner.classes_

    @property
    def n_features_in_(self) -> int:
        return int(self.inner.n_features_in_)

    @property
    def feature_names_in_(self) -> Any:
        return self.inner.feature_names_in_

    def predict(self, x: Any) -> np.ndarray:
        time.sleep(self.delay_s)
        return self.inner.predict(x)  # type: ignore[no-any-return]

    def predict_proba(self, x: Any) -> np.ndarray:
        time.sleep(self.delay_s)
        return self.inner.predict_proba(x)  # type: ignore[no-any-return]
