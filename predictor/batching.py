"""Adaptive batching: requests that queue up together share one call into the model.

A request hands its decoded rows to ``Batcher.submit`` and awaits its own results. The first
request to arrive schedules a drain for the end of the current event-loop turn (or after
``max_wait_s``, when set); every request that became ready in the meantime joins it. Under light
load a request is alone and runs at once, so batching adds no latency; under load, requests that
piled up while the model was busy are answered by one call of up to ``max_rows`` rows. Each
caller gets only its own rows and its own outputs; if a combined call is refused because of one
request's data, the requests are run one by one so that only the culprit gets the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from predictor.decode import Batch, Features
from predictor.encode import Results
from predictor.errors import PayloadError

Runner = Callable[[Features, tuple[str, ...]], Results]


class Batcher:
    """Combines concurrent requests into one model call; see the module docstring."""

    def __init__(
        self, run: Runner, *, max_rows: int, max_wait_s: float, on_batch: Callable[[int], None]
    ) -> None:
        self._run = run
        self._max_rows = max(1, max_rows)
        self._max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._queue: list[tuple[Batch, asyncio.Future[Results]]] = []
        self._scheduled = False

    def __getstate__(self) -> dict[str, Any]:
        # Sent to uvicorn worker processes before serving: nothing is queued yet.
        return {**self.__dict__, "_queue": [], "_scheduled": False}

    async def submit(self, batch: Batch) -> Results:
        """Run ``batch`` (alone or with others queued in the same turn) and return its results."""
        if self._max_rows == 1 or batch.n_rows >= self._max_rows:
            self._on_batch(batch.n_rows)
            return self._run(batch.features, batch.outputs)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Results] = loop.create_future()
        self._queue.append((batch, future))
        if not self._scheduled:
            self._scheduled = True
            if self._max_wait_s > 0:
                loop.call_later(self._max_wait_s, self._drain)
            else:
                loop.call_soon(self._drain)
        return await future

    def _drain(self) -> None:
        self._scheduled = False
        queue, self._queue = self._queue, []
        chunk: list[tuple[Batch, asyncio.Future[Results]]] = []
        rows = 0
        for item in queue:
            if chunk and rows + item[0].n_rows > self._max_rows:
                self._run_chunk(chunk)
                chunk, rows = [], 0
            chunk.append(item)
            rows += item[0].n_rows
        if chunk:
            self._run_chunk(chunk)

    def _run_chunk(self, chunk: list[tuple[Batch, asyncio.Future[Results]]]) -> None:
        live = [(b, f) for b, f in chunk if not f.cancelled()]
        if not live:
            return
        if len(live) == 1:
            self._settle(live[0][1], lambda: self._run(live[0][0].features, live[0][0].outputs))
            self._on_batch(live[0][0].n_rows)
            return
        outputs = tuple(dict.fromkeys(name for batch, _ in live for name in batch.outputs))
        try:
            combined = self._run(_concat([b.features for b, _ in live]), outputs)
        except PayloadError:
            for batch, future in live:  # find whose rows the model refused
                self._settle(future, lambda batch=batch: self._run(batch.features, batch.outputs))  # type: ignore[misc]
                self._on_batch(batch.n_rows)
            return
        except Exception as e:  # a bug, not the callers' data: every caller sees it
            for _, future in live:
                if not future.done():
                    future.set_exception(e)
            return
        self._on_batch(sum(b.n_rows for b, _ in live))
        start = 0
        for batch, future in live:
            end = start + batch.n_rows
            if not future.done():
                future.set_result({name: combined[name][start:end] for name in batch.outputs})
            start = end

    @staticmethod
    def _settle(future: asyncio.Future[Results], compute: Callable[[], Results]) -> None:
        try:
            result = compute()
        except Exception as e:
            if not future.done():
                future.set_exception(e)
            return
        if not future.done():
            future.set_result(result)


def _concat(parts: list[Features]) -> Features:
    frames = [p for p in parts if isinstance(p, pd.DataFrame)]
    if frames:
        return pd.concat(frames, ignore_index=True)
    return np.concatenate([np.asarray(p) for p in parts])
