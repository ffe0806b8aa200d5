"""Adaptive batching: requests that queue up together share one call into the model.

Two front ends share one way of combining. ``Batcher`` serves coroutines on the event loop (REST):
the first request to arrive schedules a drain for the end of the current loop turn (or after
``max_wait_s``, when set), and every request that became ready in the meantime joins it.
``ThreadBatcher`` serves threads (gRPC's worker threads): a request queues its rows, and whichever
thread takes the model next runs everything queued by then, its own rows included (flat
combining). Either way a request that finds the model idle runs at once, so batching adds no
latency under light load, and requests that piled up while the model was busy are answered by one
call of up to ``max_rows`` rows. Each caller gets only its own rows and its own outputs; if a
combined call is refused because of one request's data, the requests are run one by one so that
only the culprit gets the error.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from predictor.errors import PayloadError
from predictor.inference.batch import Batch, Results
from predictor.inference.features import Features

Runner = Callable[[Features, tuple[str, ...]], Results]


Pending: TypeAlias = "asyncio.Future[Results] | Future[Results]"
"""What a waiting caller holds: an asyncio future (event loop) or a concurrent one (threads)."""


class _Combiner:
    """The way of combining both front ends share: cut the queue into calls, share out results."""

    def __init__(
        self, run: Runner, *, max_rows: int, max_wait_s: float, on_batch: Callable[[int], None]
    ) -> None:
        self._run = run
        self._max_rows = max(1, max_rows)
        self._max_wait_s = max_wait_s
        self._on_batch = on_batch

    def _alone(self, batch: Batch) -> bool:
        """Whether ``batch`` runs directly: batching is off, or it fills a call by itself."""
        return self._max_rows == 1 or batch.n_rows >= self._max_rows

    def _run_alone(self, batch: Batch) -> Results:
        self._on_batch(batch.n_rows)
        return self._run(batch.features, batch.outputs)

    def _run_queue(self, queue: list[tuple[Batch, Pending]]) -> None:
        chunk: list[tuple[Batch, Pending]] = []
        rows = 0
        for item in queue:
            if chunk and rows + item[0].n_rows > self._max_rows:
                self._run_chunk(chunk)
                chunk, rows = [], 0
            chunk.append(item)
            rows += item[0].n_rows
        if chunk:
            self._run_chunk(chunk)

    def _run_chunk(self, chunk: list[tuple[Batch, Pending]]) -> None:
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
    def _settle(future: Pending, compute: Callable[[], Results]) -> None:
        try:
            result = compute()
        except Exception as e:
            if not future.done():
                future.set_exception(e)
            return
        if not future.done():
            future.set_result(result)


class Batcher(_Combiner):
    """Combines concurrent requests on the event loop into one model call; see the module doc."""

    def __init__(
        self, run: Runner, *, max_rows: int, max_wait_s: float, on_batch: Callable[[int], None]
    ) -> None:
        super().__init__(run, max_rows=max_rows, max_wait_s=max_wait_s, on_batch=on_batch)
        self._queue: list[tuple[Batch, Pending]] = []
        self._scheduled = False

    def __getstate__(self) -> dict[str, Any]:
        # Sent to uvicorn worker processes before serving: nothing is queued yet.
        return {**self.__dict__, "_queue": [], "_scheduled": False}

    async def submit(self, batch: Batch) -> Results:
        """Run ``batch`` (alone or with others queued in the same turn) and return its results."""
        if self._alone(batch):
            return self._run_alone(batch)
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
        self._run_queue(queue)


class ThreadBatcher(_Combiner):
    """Combines requests from concurrent threads into one model call; see the module docstring.

    Every caller queues its rows, then takes the model lock; the holder runs all that is queued
    and hands each caller its results, so a caller that gets the lock may find its work done.
    """

    def __init__(
        self, run: Runner, *, max_rows: int, max_wait_s: float, on_batch: Callable[[int], None]
    ) -> None:
        super().__init__(run, max_rows=max_rows, max_wait_s=max_wait_s, on_batch=on_batch)
        self._start_empty()

    def __getstate__(self) -> dict[str, Any]:
        # Locks do not pickle; uvicorn worker processes get the model before anything is queued.
        return {k: v for k, v in self.__dict__.items() if k not in ("_queue", "_lock", "_model")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._start_empty()

    def _start_empty(self) -> None:
        self._queue: list[tuple[Batch, Pending]] = []
        self._lock = threading.Lock()  # guards _queue
        self._model = threading.Lock()  # held by the thread that runs the model

    def submit(self, batch: Batch) -> Results:
        """Run ``batch`` (alone, or with others queued meanwhile) and return its results."""
        if self._alone(batch):
            return self._run_alone(batch)
        future: Future[Results] = Future()
        with self._lock:
            self._queue.append((batch, future))
        with self._model:
            if not future.done():  # nobody took it: run it, and whatever else is queued
                if self._max_wait_s > 0:
                    time.sleep(self._max_wait_s)
                with self._lock:
                    queue, self._queue = self._queue, []
                self._run_queue(queue)
        return future.result()


def _concat(parts: list[Features]) -> Features:
    frames = [p for p in parts if isinstance(p, pd.DataFrame)]
    if frames:
        return pd.concat(frames, ignore_index=True)
    return np.concatenate([np.asarray(p) for p in parts])
