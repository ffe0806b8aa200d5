"""The drift of a stream of answered requests, per feature: the one computation live and offline.

``Summary.add`` takes what requests decoded to (the request path's ``Features``) and what the
model answered, puts each watched feature's values into its reference bins, and slides the
window; ``table`` reads the indexes. The server's monitor and ``drift-report`` both use it, so
the figures agree on the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from predictor.drift.binning import assign, out_of_range, unseen
from predictor.drift.reference import FeatureReference, Reference
from predictor.drift.window import BinWindow
from predictor.inference.batch import Results
from predictor.inference.features import Features
from predictor.inference.signature import PREDICT, PREDICT_PROBA, Signature


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's figures: over the window (PSI, missing) and counted (the rest)."""

    feature: str
    psi: float
    missing_ratio: float
    out_of_range: int
    unseen: int


class Watched:
    """One reference feature: where its values are in a request, its window, its counts."""

    __slots__ = ("column", "marker", "out_of_range", "reference", "unseen", "window")

    def __init__(
        self, reference: FeatureReference, column: int, marker: Any, size: int | None
    ) -> None:
        self.reference = reference
        self.column = column
        self.marker = marker
        self.window = BinWindow(reference.bins, size)
        self.out_of_range = 0
        self.unseen = 0

    def add(self, values: np.ndarray) -> tuple[int, int]:
        """Add values; how many were out of range, and of an unseen category."""
        self.window.add(assign(self.reference, values, self.marker))
        outside = out_of_range(self.reference, values, self.marker)
        new = unseen(self.reference, values, self.marker)
        self.out_of_range += outside
        self.unseen += new
        return outside, new

    def figures(self) -> FeatureDrift:
        """The feature's figures now."""
        return FeatureDrift(
            self.reference.name,
            self.window.psi(np.asarray(self.reference.shares)),
            self.window.missing_ratio(),
            self.out_of_range,
            self.unseen,
        )


class Summary:
    """The drift of one model's answered requests against its reference.

    ``size``: rows of the sliding window (None: every row added, for a report).
    """

    def __init__(self, reference: Reference, signature: Signature, size: int | None) -> None:
        self.signature = signature
        self.features = watched_features(reference, signature, size)
        self.prediction = (
            Watched(reference.prediction, -1, None, size) if reference.prediction else None
        )

    def add(self, batches: Sequence[Features], results: Sequence[Results]) -> list[tuple[int, int]]:
        """Add requests; per watched feature, the values out of range and of unseen categories."""
        columns = columns_of(batches, self.features)
        added = [w.add(v) for w, v in zip(self.features, columns, strict=True)]
        labels = predicted(results, self.signature)
        if self.prediction is not None and len(labels):
            self.prediction.add(labels)
        return added

    @property
    def rows(self) -> int:
        """Rows in the window."""
        return self.features[0].window.rows if self.features else 0

    def table(self) -> list[FeatureDrift]:
        """Each watched feature's figures, in the reference's order."""
        return [w.figures() for w in self.features]

    def prediction_psi(self) -> float | None:
        """The predictions' PSI over the window (None without a prediction reference)."""
        if self.prediction is None:
            return None
        return self.prediction.figures().psi


def watched_features(reference: Reference, signature: Signature, size: int | None) -> list[Watched]:
    """The reference's features the model takes, with their column in a request's features."""
    names = list(signature.feature_names or ())
    found = []
    for position, feature in enumerate(reference.features):
        if names and feature.name not in names:
            continue
        column = names.index(feature.name) if names else position
        marker = signature.missing_marker(column)
        found.append(Watched(feature, column, marker if isinstance(marker, str) else None, size))
    return found


def columns_of(batches: Sequence[Features], features: Sequence[Watched]) -> list[np.ndarray]:
    """Each watched feature's values over ``batches``, concatenated (arrays or frames)."""
    arrays = [b for b in batches if isinstance(b, np.ndarray) and b.ndim == 2]
    frames = [b for b in batches if isinstance(b, pd.DataFrame)]
    stacked = np.concatenate(arrays) if arrays else None
    columns = []
    for watched in features:
        parts = [] if stacked is None else [stacked[:, watched.column]]
        parts += [frame.iloc[:, watched.column].to_numpy() for frame in frames]
        columns.append(_joined(parts))
    return columns


def predicted(results: Sequence[Results], signature: Signature) -> np.ndarray:
    """The labels (or values) the model answered, where the caller asked for them."""
    parts = []
    for answered in results:
        if PREDICT in answered:
            parts.append(np.asarray(answered[PREDICT]).ravel())
        elif PREDICT_PROBA in answered and signature.classes is not None:
            classes = np.asarray(signature.classes, dtype=object)
            parts.append(classes[np.asarray(answered[PREDICT_PROBA]).argmax(axis=1)])
    return _joined(parts)


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return np.empty(0)
    if len({p.dtype.kind for p in parts}) > 1:
        parts = [p.astype(object) for p in parts]
    return np.concatenate(parts)
