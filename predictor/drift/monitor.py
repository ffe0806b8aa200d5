"""Live drift of one served model: the rows it answers, summarised off the request path.

``offer`` is all the request path does: a coin toss for ``sample_rate`` and an append to a
queue bounded in rows (when it is full the request is counted as not seen, never waited for:
under heavy traffic, drift samples it). One
worker thread for the whole process looks at every model's queue each ``WAKE_S``, concatenates
what is queued (one pass per feature, however many requests), puts the values into the
reference's bins, slides each feature's window, and sets the series:

- ``predictor_feature_drift_psi{model, version, feature}`` and ``predictor_prediction_drift_psi``:
  the population stability index of the window against the reference;
- ``predictor_feature_missing_ratio{feature}``: the window's share of missing values;
- ``predictor_feature_out_of_range_total{feature}``: numbers outside the reference's min and max;
- ``predictor_feature_unseen_category_total{feature}``: strings of a category never seen;
- ``predictor_drift_window_rows``: rows in the window (an alert waits for enough of them).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from typing import Any

from predictor.drift.reference import NUMBER, Reference
from predictor.drift.summary import Summary
from predictor.inference.batch import Results
from predictor.inference.features import Features
from predictor.inference.signature import Signature
from predictor.metrics.handles import labelled
from predictor.metrics.series import (
    DRIFT_DROPPED,
    DRIFT_ROWS,
    FEATURE_MISSING,
    FEATURE_OUT_OF_RANGE,
    FEATURE_PSI,
    FEATURE_UNSEEN,
    PREDICTION_PSI,
)

logger = logging.getLogger(__name__)

WAKE_S = 0.25
"""How often the worker looks at the queues (requests never wake it)."""
QUEUE_ROWS = 4096
QUEUE_REQUESTS = 256
"""Rows, and requests, waiting per model at most between two wakes (16,384 rows and 1,024
requests a second at most are summarised); the requests past them are not seen by drift, and
counted. A request costs the worker about 4 microseconds, a row a fraction of one. Measured on
the bench's linear model: bounded at 256 requests alone, 64-row requests at c=32 answered 0.89
times as many per second as with drift off; with the rows bounded too, 0.99 (bench/RESULTS.md)."""

_COIN = random.Random()
os.register_at_fork(after_in_child=_COIN.seed)


class DriftMonitor:
    """The drift of one model version: its queue, its windows and its series."""

    def __init__(
        self,
        name: str,
        version: str,
        reference: Reference,
        signature: Signature,
        *,
        window_rows: int,
        sample_rate: float,
    ) -> None:
        self.name, self.version = name, version
        self.sample_rate = sample_rate
        self.summary = Summary(reference, signature, window_rows)
        self.queue: deque[tuple[Features, Results]] = deque()
        self.queued_rows = 0
        self._watched = False
        self._lock = threading.Lock()  # the worker drains while it may also be stopped
        for watched in self.summary.features:  # the series exist from the start, at 0
            feature = watched.reference.name
            counted = FEATURE_OUT_OF_RANGE if watched.reference.kind == NUMBER else FEATURE_UNSEEN
            for metric in (FEATURE_PSI, FEATURE_MISSING, counted):
                labelled(metric, name, version, feature)
        labelled(DRIFT_ROWS, name, version)
        labelled(DRIFT_DROPPED, name, version)
        if self.summary.prediction is not None:
            labelled(PREDICTION_PSI, name, version)

    def __getstate__(self) -> dict[str, Any]:
        # Sent to uvicorn worker processes before serving: each summarises its own rows.
        state = dict(self.__dict__)
        state.update(queue=deque(), queued_rows=0, _lock=None, _watched=False)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def offer(self, features: Features, results: Results) -> None:
        """Queue one answered request for the worker (or count it as not seen)."""
        if self.sample_rate < 1.0 and _COIN.random() >= self.sample_rate:
            return
        if self.queued_rows >= QUEUE_ROWS or len(self.queue) >= QUEUE_REQUESTS:
            labelled(DRIFT_DROPPED, self.name, self.version).inc()
            return
        self.queued_rows += len(features)
        self.queue.append((features, results))
        if not self._watched:  # once per process: the worker drains it from now on
            WORKER.watch(self)
            self._watched = True

    def drain(self) -> None:
        """Summarise everything queued (the worker's thread)."""
        items = []
        while self.queue:
            items.append(self.queue.popleft())
        self.queued_rows = 0  # approximate: a request queued meanwhile counts towards the next
        if not items:
            return
        with self._lock:
            added = self.summary.add([f for f, _ in items], [r for _, r in items])
            self._publish(added)

    def _publish(self, added: list[tuple[int, int]]) -> None:
        """Set the series from the summary (and count what this drain added)."""
        name, version = self.name, self.version
        for figures, (outside, new) in zip(self.summary.table(), added, strict=True):
            key = (name, version, figures.feature)
            labelled(FEATURE_PSI, *key).set(figures.psi)
            labelled(FEATURE_MISSING, *key).set(figures.missing_ratio)
            if outside:
                labelled(FEATURE_OUT_OF_RANGE, *key).inc(outside)
            if new:
                labelled(FEATURE_UNSEEN, *key).inc(new)
        prediction = self.summary.prediction_psi()
        if prediction is not None:
            labelled(PREDICTION_PSI, name, version).set(prediction)
        labelled(DRIFT_ROWS, name, version).set(self.summary.rows)

    def stop(self) -> None:
        """Stop summarising (the model is no longer served)."""
        WORKER.forget(self)
        self.queue.clear()
        self._watched = True  # nothing offered later is drained


class _Worker:
    """The one thread that drains every model's queue, started on first use in each process."""

    def __init__(self) -> None:
        self._monitors: weakref.WeakSet[DriftMonitor] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._pid = 0

    def watch(self, monitor: DriftMonitor) -> None:
        """Drain ``monitor`` from now on (starting the thread in this process if need be)."""
        with self._lock:
            self._monitors.add(monitor)
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="drift", daemon=True).start()

    def forget(self, monitor: DriftMonitor) -> None:
        """Stop draining ``monitor``."""
        with self._lock:
            self._monitors.discard(monitor)

    def _run(self) -> None:
        while True:
            time.sleep(WAKE_S)
            with self._lock:
                monitors = list(self._monitors)
            for monitor in monitors:
                try:
                    monitor.drain()
                except Exception:  # a summary must never stop the others, nor serving
                    logger.exception("drift summary of model %s failed", monitor.name)


WORKER = _Worker()
