"""A model's lane: the cache, batch and engine stages in front of one loaded model.

``answer`` looks the rows up in the prediction cache (when enabled), otherwise submits them to
the batcher, which runs the engine on the rows of concurrent requests at once; what was computed
is cached, timed and counted (the prediction distribution canary analysis compares). Picklable:
uvicorn's worker processes receive the model pickled.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from predictor.inference.batch import Batch, Results
from predictor.inference.batching import Batcher, ThreadBatcher
from predictor.inference.cache import PredictionCache
from predictor.inference.estimator import run_estimator
from predictor.inference.native import convertible
from predictor.loading.loader import LoadedModel
from predictor.metrics.kserve_series import observe_predict_time
from predictor.metrics.record import observe_batch, observe_cache, observe_predictions
from predictor.sections import Limits
from predictor.serving.strategy import Answer

TREE_BATCH_ROWS = 1024
"""Rows per call for tree ensembles: measured on the bench's forest, 64-row requests at c=32
answered 1.26-1.30 times as many requests as with 64 (their nodes leave the CPU caches between
calls; one call over many rows brings them back once)."""
BATCH_ROWS = 64
"""Rows per call for other models: measured on a linear model, 64-row requests at c=32 answered
0.72-0.83 times as many with 1,024; why was not established."""


def batch_rows_for(estimator: Any) -> int:
    """The default ``batch_max_rows`` for a model: high for tree ensembles, 64 for others."""
    return TREE_BATCH_ROWS if convertible(estimator) else BATCH_ROWS


class ModelLane:
    """One loaded model behind its cache and batchers (event loop, gRPC threads)."""

    def __init__(
        self, name: str, loaded: LoadedModel, limits: Limits, cache: PredictionCache
    ) -> None:
        self.name = name
        self._loaded = loaded
        self.cache = cache
        run = functools.partial(run_estimator, loaded.engine)
        on_batch = functools.partial(observe_batch, name, loaded.version)
        max_rows = limits.batch_max_rows or batch_rows_for(loaded.estimator)
        max_wait_s = limits.batch_max_wait_ms / 1000
        self.batcher = Batcher(run, max_rows=max_rows, max_wait_s=max_wait_s, on_batch=on_batch)
        self.threaded = ThreadBatcher(
            run, max_rows=max_rows, max_wait_s=max_wait_s, on_batch=on_batch
        )

    @property
    def loaded(self) -> LoadedModel:
        """The model this lane runs."""
        return self._loaded

    async def answer(self, batch: Batch, request_id: str | None) -> Answer:
        """The batch's results: cached, or computed with concurrent requests."""
        key, results = self._cached(batch)
        if results is None:
            started = time.perf_counter()
            results = await self.batcher.submit(batch)
            self._computed(batch, key, results, started)
        return Answer(results, self._loaded.version)

    def answer_blocking(self, batch: Batch, request_id: str | None) -> Answer:
        """``answer`` on the calling thread, batched with the other threads' requests."""
        key, results = self._cached(batch)
        if results is None:
            started = time.perf_counter()
            results = self.threaded.submit(batch)
            self._computed(batch, key, results, started)
        return Answer(results, self._loaded.version)

    def _cached(self, batch: Batch) -> tuple[Any, Results | None]:
        """The cache key for ``batch`` (None if not cacheable) and its cached results, if any."""
        version = self._loaded.version
        key = self.cache.key(version, batch.outputs, batch.features)
        if key is None:
            return None, None
        cached = self.cache.get(key)
        observe_cache(self.name, version, hit=cached is not None)
        return key, cached

    def _computed(self, batch: Batch, key: Any, results: Results, started: float) -> None:
        """Record freshly computed results: cache, time and count them."""
        observe_predict_time(self.name, time.perf_counter() - started)
        if key is not None:
            self.cache.put(key, results)
        loaded = self._loaded
        observe_predictions(self.name, loaded.version, loaded.signature, results, batch.n_rows)
