"""The shadow worker: answers requests a second time, off the response path, and compares.

``offer`` is all the request path does: a coin toss for ``sample_rate`` and an append to a
bounded queue, which never blocks and wakes no thread. When the queue is full the request is
dropped for the shadow and counted; a caller never waits for the shadow and never sees its
errors. One worker thread looks at the queue every ``WAKE_S``, asks the shadow about everything
queued at once (one model call for many requests), compares the rows (requests that asked for
the same outputs together), updates the metrics and writes the prediction log.

Per row, ``predictor_shadow_predictions_total{model, version, shadow_version, agreement}`` counts
``agree`` and ``disagree``; ``predictor_shadow_probability_delta`` is the largest absolute
difference of the two probability rows. The shadow's errors, its time per batch and the
requests dropped are counted too. The worker starts on first use, so a model pickled into
uvicorn's worker processes starts one in each.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from predictor.inference.batch import Results
from predictor.inference.features import Features
from predictor.metrics.handles import labelled
from predictor.metrics.series import (
    SHADOW_DELTA,
    SHADOW_DROPPED,
    SHADOW_ERRORS,
    SHADOW_PREDICTIONS,
    SHADOW_SECONDS,
)
from predictor.protocol.tensors import new_id
from predictor.shadow.compare import compare
from predictor.shadow.log import PredictionLog
from predictor.shadow.targets import ShadowTarget

logger = logging.getLogger(__name__)

_COIN = random.Random()
"""The sampling coin: its own generator, seeded from the system, so that a model seeding the
``random`` module cannot fix which requests the shadow sees (nor be moved by the coin)."""
os.register_at_fork(after_in_child=_COIN.seed)

MAX_DRAIN = 256
"""Most queued requests the worker takes at once for one shadow call."""
WAKE_S = 0.1
"""How often the worker looks at the queue (requests never wake it: that would cost a thread
switch each, on the serving cores). Measured against 0.02 s on the linear model's 1-row v2 cell
at c=32: 1.05 times the requests per second with the shadow on (8 rounds, 6 in its favour)."""


class Offered(NamedTuple):
    """One request's rows and the primary's answers, waiting for the shadow.

    A named tuple: made once per request on the serving path, where a frozen dataclass's
    ``__init__`` costs several times as much.
    """

    at: float
    request_id: str | None
    """The request's id; one is drawn only for the prediction log, when there is one."""
    features: Features
    n_rows: int
    results: Results


class ShadowRunner:
    """A bounded queue and one worker thread that asks the shadow and compares."""

    def __init__(
        self,
        *,
        model: str,
        version: str,
        classes: tuple[Any, ...] | None,
        target: ShadowTarget,
        log: PredictionLog | None = None,
        sample_rate: float = 1.0,
        queue_size: int = 1024,
        tolerance: float = 1e-6,
        log_inputs: bool = False,
    ) -> None:
        self.model, self.version, self.classes = model, version, classes
        self.target = target
        self.log = log
        self.sample_rate = sample_rate
        self.queue_size = queue_size
        self.tolerance = tolerance
        self.log_inputs = log_inputs
        self._pending: deque[Offered] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        for counter in (SHADOW_DROPPED, SHADOW_ERRORS):  # at 0 from the start, not "no data"
            counter.labels(model, version)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_pending=None, _thread=None, _lock=None, _stopping=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock(), _stopping=threading.Event())

    def offer(
        self, request_id: str | None, features: Features, n_rows: int, results: Results
    ) -> None:
        """Hand a request to the shadow, or drop it (counted) when the queue is full.

        Nothing wakes the worker: it looks at the queue every ``WAKE_S`` seconds, so a
        request costs an append, not a thread switch.
        """
        if self.sample_rate < 1.0 and _COIN.random() >= self.sample_rate:
            return
        pending = self._pending if self._pending is not None else self._start()
        if len(pending) >= self.queue_size:
            labelled(SHADOW_DROPPED, self.model, self.version).inc()
            return
        pending.append(Offered(time.time(), request_id, features, n_rows, results))

    def _start(self) -> deque[Offered]:
        with self._lock:
            if self._pending is None:
                self._pending = deque()
                self._thread = threading.Thread(target=self._work, name="shadow", daemon=True)
                self._thread.start()
                atexit.register(self.stop)
            return self._pending

    def stop(self, timeout: float = 5.0) -> None:
        """Let the worker finish what is queued (up to ``timeout``), then close the log."""
        self._stopping.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)
        if self.log is not None:
            self.log.close()

    def _work(self) -> None:
        pending = self._pending
        assert pending is not None
        while True:
            stopping = self._stopping.wait(WAKE_S)
            # Only what queued before this wake, then sleep again: a worker that chased requests
            # one by one would hold the GIL against the event loop in turns and slow every
            # caller. A shadow that cannot keep up fills the queue instead (drops are counted).
            left = len(pending)
            while left > 0 or (stopping and pending):
                items = [pending.popleft() for _ in range(min(MAX_DRAIN, len(pending)))]
                left -= len(items)
                try:
                    self.handle(items)
                except Exception:  # the shadow must never take the server down
                    logger.exception("the shadow failed on %d request(s)", len(items))
                    labelled(SHADOW_ERRORS, self.model, self.version).inc(len(items))
            if stopping:
                return

    def handle(self, items: list[Offered]) -> None:
        """Ask the shadow about the queued requests at once, then compare (and log) them.

        Requests that asked for the same outputs are compared together, in one go.
        """
        started = time.perf_counter()
        # Without a log, the shadow computes only what the primary did (all that is compared);
        # a log records every output it has, for the report's distributions.
        wanted = None if self.log is not None else frozenset().union(*[i.results for i in items])
        answers = self.target.answer(_joined([i.features for i in items]), wanted)
        labelled(SHADOW_SECONDS, self.model, self.version).observe(time.perf_counter() - started)
        shadow_version = self.target.version
        groups: dict[tuple[str, ...], list[int]] = {}
        for k, item in enumerate(items):
            groups.setdefault(tuple(item.results), []).append(k)
        # The usual case, one group (every request asked alike), compares the answers as they are.
        offsets = np.cumsum([0] + [i.n_rows for i in items]) if len(groups) > 1 else None
        agree = disagree = 0
        deltas: list[np.ndarray] = []
        records: list[dict[str, Any]] = []
        for names, members in groups.items():
            primary = {n: _stacked([items[k].results[n] for k in members]) for n in names}
            if offsets is None:
                theirs = answers
            else:
                rows = np.concatenate([np.arange(offsets[k], offsets[k + 1]) for k in members])
                theirs = {n: v[rows] for n, v in answers.items()}
            found = compare(
                primary,
                theirs,
                classes=self.classes,
                shadow_classes=self.target.classes,
                tolerance=self.tolerance,
            )
            agree += found.agreed
            disagree += found.disagreed
            if found.proba_delta is not None:
                deltas.append(found.proba_delta)
            if self.log is not None:
                start = 0
                for k in members:
                    n = items[k].n_rows
                    mine = {name: v[start : start + n] for name, v in theirs.items()}
                    records += self._records(
                        items[k], mine, found.agree[start : start + n], shadow_version
                    )
                    start += n
        labelled(SHADOW_PREDICTIONS, self.model, self.version, shadow_version, "agree").inc(agree)
        labelled(SHADOW_PREDICTIONS, self.model, self.version, shadow_version, "disagree").inc(
            disagree
        )
        if deltas:
            histogram = labelled(SHADOW_DELTA, self.model, self.version, shadow_version)
            histogram.observe_many(np.concatenate(deltas))
        if self.log is not None:
            self.log.write(records)

    def _records(
        self, item: Offered, shadow: Results, agree: np.ndarray, shadow_version: str
    ) -> list[dict[str, Any]]:
        at = datetime.fromtimestamp(item.at, UTC).isoformat(timespec="milliseconds")
        request_id = item.request_id or new_id()
        inputs = _rows(item.features) if self.log_inputs else None
        records = []
        for row in range(item.n_rows):
            record: dict[str, Any] = {
                "time": at,
                "id": request_id,
                "row": row,
                "model": self.model,
                "version": self.version,
                "shadow_version": shadow_version,
                "outputs": {k: v[row] for k, v in item.results.items()},
                "shadow_outputs": {k: v[row] for k, v in shadow.items()},
                "agree": bool(agree[row]),
            }
            if inputs is not None:
                record["inputs"] = inputs[row]
            records.append(record)
        return records


def _stacked(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _joined(parts: list[Features]) -> Features:
    if len(parts) == 1:
        return parts[0]
    frames = [p for p in parts if isinstance(p, pd.DataFrame)]
    if len(frames) == len(parts):
        return pd.concat(frames, ignore_index=True)
    return np.concatenate([np.asarray(p) for p in parts])


def _rows(features: Features) -> list[Any]:
    if isinstance(features, pd.DataFrame):
        return list(features.to_dict(orient="records"))
    rows: list[Any] = np.asarray(features).tolist()
    return rows
