"""How a shadow's answers compare with the primary's, row by row; pure functions.

Rows agree when their labels are the same (classifiers: ``predict``, else the most probable
class), or, for any other output, when the values are within ``tolerance``. Where both gave
probabilities, the largest absolute difference per row is reported too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from predictor.inference.batch import Results
from predictor.inference.signature import PREDICT, PREDICT_PROBA


@dataclass(frozen=True)
class Comparison:
    """Per row: whether the two agree, and the largest probability difference (if any)."""

    agree: np.ndarray
    proba_delta: np.ndarray | None = None

    @property
    def agreed(self) -> int:
        """Rows that agree."""
        return int(np.count_nonzero(self.agree))

    @property
    def disagreed(self) -> int:
        """Rows that do not."""
        return int(self.agree.size - self.agreed)


def labels(results: Results, classes: Sequence[Any] | None) -> np.ndarray | None:
    """The labels in ``results``: ``predict``, or the most probable class; None if neither."""
    if PREDICT in results:
        return np.asarray(results[PREDICT])
    if PREDICT_PROBA in results and classes is not None:
        picked: np.ndarray = np.asarray(classes, dtype=object)[
            np.argmax(results[PREDICT_PROBA], axis=1)
        ]
        return picked
    return None


def compare(
    primary: Results,
    shadow: Results,
    *,
    classes: Sequence[Any] | None,
    shadow_classes: Sequence[Any] | None,
    tolerance: float = 1e-6,
) -> Comparison:
    """Compare two models' results for the same rows.

    Raises:
        ValueError: the two share no output to compare, or their row counts differ.
    """
    delta = None
    if PREDICT_PROBA in primary and PREDICT_PROBA in shadow:
        a, b = primary[PREDICT_PROBA], shadow[PREDICT_PROBA]
        if a.shape == b.shape and _same(classes, shadow_classes):
            delta = np.max(np.abs(a - b), axis=1) if a.size else np.empty(0)
    first, second = labels(primary, classes), labels(shadow, shadow_classes)
    if first is not None and second is not None and (classes is not None or PREDICT in primary):
        if first.shape != second.shape:
            raise ValueError("the shadow answered another number of rows")
        if first.dtype.kind in "fc" and second.dtype.kind in "fc":
            return Comparison(_close(first, second, tolerance), delta)
        return Comparison(_equal(first, second), delta)
    for name, values in primary.items():
        if name in shadow and np.shape(shadow[name]) == np.shape(values):
            return Comparison(_close(values, shadow[name], tolerance), delta)
    raise ValueError("the primary and the shadow gave no output in common")


def _same(a: Sequence[Any] | None, b: Sequence[Any] | None) -> bool:
    return a is not None and b is not None and [str(x) for x in a] == [str(x) for x in b]


def _equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.ndim == 1 and a.dtype.kind == b.dtype.kind:
        return np.asarray(a == b, dtype=bool)
    a2, b2 = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return np.asarray(
        [[str(x) for x in r] == [str(y) for y in s] for r, s in zip(a2, b2, strict=True)],
        dtype=bool,
    )


def _close(a: np.ndarray, b: np.ndarray, tolerance: float) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    y = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    return np.asarray(np.all(np.abs(x - y) <= tolerance, axis=1))
