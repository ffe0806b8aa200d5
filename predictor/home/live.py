"""Live numbers for the home page, read from the process's own metrics (no Prometheus needed).

``LiveHistory`` keeps a snapshot of the metrics every ``every_s`` seconds (on a thread of its own,
off the request path) for ``keep_s`` seconds. ``numbers`` turns two snapshots into what the page
shows for a model: requests, error ratio, p50/p99 latency, rows per call, class shares, shadow
agreement, bandit shares, and drift per feature. Counters are read as the difference between the
two snapshots (since start: against nothing); gauges as they are now. Pure, but for the thread.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from predictor.statuses import SERVER_FAILURES

Sample = tuple[str, dict[str, str], float]
ERROR_STATUS = re.compile(f"^(?:{SERVER_FAILURES})$")
"""What counts as an error, as the canary analysis counts it (``predictor.statuses``)."""


@dataclass(frozen=True)
class Snapshot:
    """Every sample at one moment."""

    at: float
    samples: tuple[Sample, ...]


@dataclass
class LiveHistory:
    """Snapshots of the metrics, one every ``every_s`` seconds, kept ``keep_s`` seconds."""

    read: Callable[[], list[Sample]]
    every_s: float = 15.0
    keep_s: float = 330.0
    clock: Callable[[], float] = time.monotonic
    _kept: deque[Snapshot] = field(default_factory=deque)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Take snapshots from now on (once; later calls do nothing)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="home-live", daemon=True)
                self._thread.start()

    def now(self) -> Snapshot:
        """A snapshot taken now."""
        return Snapshot(self.clock(), tuple(self.read()))

    def ago(self, seconds: float) -> Snapshot | None:
        """The oldest kept snapshot no older than ``seconds`` (None before the first)."""
        limit = self.clock() - seconds
        with self._lock:
            for snapshot in self._kept:
                if snapshot.at >= limit:
                    return snapshot
        return None

    def _run(self) -> None:
        while True:
            snapshot = self.now()
            with self._lock:
                self._kept.append(snapshot)
                while self._kept and self._kept[0].at < snapshot.at - self.keep_s:
                    self._kept.popleft()
            time.sleep(self.every_s)


def numbers(model: str, now: Snapshot, before: Snapshot | None) -> dict[str, Any]:
    """What the page shows for ``model`` between ``before`` (None: since start) and ``now``."""

    def total(name: str, **match: str) -> float:
        return _sum(now, name, model, match) - (_sum(before, name, model, match) if before else 0)

    def by(name: str, label: str, **match: str) -> dict[str, float]:
        found = _by(now, name, model, label, match)
        if before is not None:
            for key, value in _by(before, name, model, label, match).items():
                found[key] = found.get(key, 0.0) - value
        return {k: v for k, v in found.items() if v > 0}

    requests = total("predictor_requests_total")
    statuses = by("predictor_requests_total", "status")
    errors = sum(v for status, v in statuses.items() if ERROR_STATUS.match(status))
    calls = total("predictor_batch_rows_count")
    buckets = by("predictor_request_duration_seconds_bucket", "le")
    found: dict[str, Any] = {
        "seconds": None if before is None else round(now.at - before.at),
        "requests": round(requests),
        "error_ratio": errors / requests if requests else None,
        "p50_ms": _quantile(0.5, buckets),
        "p99_ms": _quantile(0.99, buckets),
        "rows_per_call": total("predictor_batch_rows_sum") / calls if calls else None,
        "class_shares": _shares(by("predictor_predictions_total", "class")),
    }
    agreement = by("predictor_shadow_predictions_total", "agreement")
    if agreement:
        found["shadow_agreement"] = agreement.get("agree", 0.0) / sum(agreement.values())
    pulls = by("predictor_bandit_pulls_total", "version")
    if pulls:
        found["bandit_shares"] = _shares(pulls)
    drift = _by(now, "predictor_feature_drift_psi", model, "feature", {})
    if drift:
        rows = _sum(now, "predictor_drift_window_rows", model, {})
        found["drift_rows"] = round(rows)
        found["drift_psi"] = {k: (v if rows else None) for k, v in sorted(drift.items())}
    return found


def _matches(labels: dict[str, str], model: str, match: dict[str, str]) -> bool:
    return labels.get("model") == model and all(labels.get(k) == v for k, v in match.items())


def _sum(snapshot: Snapshot, name: str, model: str, match: dict[str, str]) -> float:
    return sum(
        v for n, labels, v in snapshot.samples if n == name and _matches(labels, model, match)
    )


def _by(
    snapshot: Snapshot, name: str, model: str, label: str, match: dict[str, str]
) -> dict[str, float]:
    found: dict[str, float] = {}
    for n, labels, value in snapshot.samples:
        if n == name and _matches(labels, model, match) and label in labels:
            found[labels[label]] = found.get(labels[label], 0.0) + value
    return found


def _shares(counts: dict[str, float]) -> dict[str, float]:
    whole = sum(counts.values())
    return {k: v / whole for k, v in sorted(counts.items())} if whole else {}


def _quantile(q: float, cumulative: dict[str, float]) -> float | None:
    """A histogram quantile in milliseconds, interpolated in its bucket as Prometheus does."""
    bounds = sorted((float(le), count) for le, count in cumulative.items())
    if not bounds or bounds[-1][1] <= 0:
        return None
    rank = q * bounds[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in bounds:
        if count >= rank:
            if math.isinf(upper):
                return lower * 1000
            inside = count - below
            share = (rank - below) / inside if inside else 0.0
            return (lower + (upper - lower) * share) * 1000
        lower, below = upper, count
    return lower * 1000
