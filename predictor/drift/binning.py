"""Values into a reference's bins, and the population stability index; pure.

A number falls in bin ``i`` when ``edges[i-1] < value <= edges[i]`` (below the first edge: bin
0; above the last: the last value bin). A string falls in its category's bin, or in "other".
A missing value (None, NaN, an empty string, or the model's missing marker for the column) falls
in the last bin.

    PSI = sum over bins of (live - reference) * ln(live / reference)

with each share floored at ``FLOOR`` (an empty bin would make the index infinite).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd


class FeatureReference(Protocol):
    """What binning reads of a feature's reference (``reference.FeatureReference``)."""

    @property
    def kind(self) -> str:
        """``number`` or ``string``."""

    @property
    def edges(self) -> tuple[float, ...]:
        """A number's inner bin edges."""

    @property
    def categories(self) -> tuple[str, ...]:
        """A string's top categories."""

    @property
    def minimum(self) -> float | None:
        """The smallest number seen."""

    @property
    def maximum(self) -> float | None:
        """The largest number seen."""

    @property
    def known(self) -> tuple[str, ...] | None:
        """Every category seen, when listed."""


FLOOR = 1e-4
"""The smallest share a bin is taken to have."""


def is_missing(values: np.ndarray, marker: Any = None) -> np.ndarray:
    """Which values are missing: None, NaN, an empty string, or ``marker``."""
    if values.dtype.kind == "f":
        return np.asarray(np.isnan(values), dtype=bool)
    if values.dtype.kind in "iub":
        return np.zeros(len(values), dtype=bool)
    missing: np.ndarray = np.asarray(pd.isna(values), dtype=bool) | (values == "")
    if marker is not None and not (isinstance(marker, float) and np.isnan(marker)):
        missing |= values == marker
    return missing


def assign(reference: FeatureReference, values: np.ndarray, marker: Any = None) -> np.ndarray:
    """Each value's bin index (the missing bin is the last)."""
    missing = is_missing(values, marker)
    if reference.kind == "number":
        numbers = np.where(missing, 0.0, _as_numbers(values))
        found = np.searchsorted(np.asarray(reference.edges), numbers, side="left")
        return np.where(missing, len(reference.edges) + 1, found).astype(np.int32)
    lookup = {c: i for i, c in enumerate(reference.categories)}
    other = len(reference.categories)
    found = np.fromiter(
        (lookup.get(str(v), other) for v in values), dtype=np.int32, count=len(values)
    )
    return np.where(missing, other + 1, found).astype(np.int32)


def psi(reference_shares: np.ndarray, counts: np.ndarray) -> float:
    """The population stability index of live bin ``counts`` against the reference's shares."""
    total = counts.sum()
    if total == 0:
        return 0.0
    live = np.maximum(counts / total, FLOOR)
    expected = np.maximum(reference_shares, FLOOR)
    return float(np.sum((live - expected) * np.log(live / expected)))


def out_of_range(reference: FeatureReference, values: np.ndarray, marker: Any = None) -> int:
    """How many present numbers lie outside the reference's min and max."""
    if reference.kind != "number" or reference.minimum is None or reference.maximum is None:
        return 0
    missing = is_missing(values, marker)
    numbers = _as_numbers(values)[~missing]
    return int(np.count_nonzero((numbers < reference.minimum) | (numbers > reference.maximum)))


def unseen(reference: FeatureReference, values: np.ndarray, marker: Any = None) -> int:
    """How many present strings are of a category the reference never saw.

    0 when the reference did not list every category (more than it keeps).
    """
    if reference.kind != "string" or reference.known is None:
        return 0
    present = values[~is_missing(values, marker)]
    if not len(present):
        return 0
    return int(np.count_nonzero(~np.isin(present.astype(str), np.asarray(reference.known))))


def _as_numbers(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "fiub":
        return np.asarray(values, dtype=np.float64)
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(np.float64)
