"""The bins of the last rows a model answered, per feature: a sliding window; pure.

Each feature keeps a ring of the last ``size`` rows' bin indexes and their counts, updated in
place as rows arrive (the counts of the rows that fall out of the window are taken away), so
the index over the window costs one pass over a few bins whatever its size. Without a size, it
counts every row added (an offline report).
"""

from __future__ import annotations

import numpy as np

from predictor.drift.binning import psi


class BinWindow:
    """The last ``size`` bin indexes of one feature (of ``bins`` bins) and their counts."""

    def __init__(self, bins: int, size: int | None) -> None:
        self.size = size
        self.ring = np.full(size or 0, -1, dtype=np.int32)
        self.counts = np.zeros(bins, dtype=np.int64)
        self.head = 0

    def add(self, indexes: np.ndarray) -> None:
        """Add rows' bin indexes (only the last ``size`` stay)."""
        if self.size is None:
            self.counts += np.bincount(indexes, minlength=len(self.counts))
            return
        new = indexes[-self.size :]
        positions = (self.head + np.arange(len(new))) % self.size
        old = self.ring[positions]
        old = old[old >= 0]
        bins = len(self.counts)
        self.counts -= np.bincount(old, minlength=bins)
        self.counts += np.bincount(new, minlength=bins)
        self.ring[positions] = new
        self.head = int((self.head + len(new)) % self.size)

    @property
    def rows(self) -> int:
        """Rows in the window."""
        return int(self.counts.sum())

    def psi(self, reference_shares: np.ndarray) -> float:
        """The population stability index of the window against the reference."""
        return psi(reference_shares, self.counts)

    def missing_ratio(self) -> float:
        """The share of the window's rows that were missing (the last bin)."""
        rows = self.rows
        return float(self.counts[-1] / rows) if rows else 0.0
