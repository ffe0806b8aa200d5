"""Small estimators with scikit-learn's API whose failures the tests choose (importable by pickles)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

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
