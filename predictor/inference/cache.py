"""A bounded LRU cache of predictions, keyed by model version, requested outputs and exact input.

Off by default (``PREDICTOR_CACHE_SIZE=0``). Only numeric array inputs are cached; the key holds
the version, so an answer computed by one model version is never served by another (and the
cache belongs to one loaded model, so a reload starts empty). Safe to share between the event
loop and gRPC's worker threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from predictor.inference.batch import Results


class PredictionCache:
    """Least-recently-used map from (version, outputs, input bytes) to results."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[Any, ...], Results] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Sent to uvicorn worker processes before serving, while empty; locks do not pickle.
        return {"size": self.size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["size"])  # type: ignore[misc]

    def key(self, version: str, outputs: tuple[str, ...], features: Any) -> tuple[Any, ...] | None:
        """The cache key, or None when this input is not cacheable."""
        if self.size <= 0 or not isinstance(features, np.ndarray) or features.dtype.kind != "f":
            return None
        return (version, outputs, features.shape, features.tobytes())

    def get(self, key: tuple[Any, ...]) -> Results | None:
        """The cached results, refreshed as most recently used."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], results: Results) -> None:
        """Store results, evicting the least recently used entry when full."""
        with self._lock:
            self._entries[key] = results
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
