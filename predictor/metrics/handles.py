"""Hot-path handles on prometheus_client metrics: the same values, without per-call overhead.

The one module that reaches into prometheus_client's metric children (``_value``, ``_buckets``,
``_sum``, ``_upper_bounds``); ``tests/unit/test_private_apis.py`` names the version it was written
for.

``labelled(metric, *values)`` remembers ``metric.labels(*values)`` and wraps it: counters and
gauges move their value directly, histograms find their bucket by bisection and take a whole
array at once (``observe_many``). What ``/metrics`` shows is what prometheus_client's own calls
would have made it show (``tests/unit/test_metric_handles.py``).
"""

from __future__ import annotations

import bisect
import functools
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge, Histogram


@functools.cache
def labelled(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)`` as a hot-path handle, remembered (``labels`` checks and locks).

    Every label value on the request path comes from a bounded set (model, version, protocol,
    status, class; unknown model names are folded into one), so the memo stays small.
    """
    child = metric.labels(*values)
    if isinstance(metric, Histogram):
        return HistogramHandle(child)
    if isinstance(metric, Counter | Gauge):
        return ValueHandle(child)
    return child


def drop_series(metric: Any, first: str) -> None:
    """Remove every series of ``metric`` whose first label value is ``first``.

    The memo of handles is cleared too, so that none is left pointing at a removed series (it
    refills on the next request of each kind: a few microseconds each).
    """
    with metric._lock:  # prometheus_client's: its series by label values, and their names
        doomed = [labels for labels in metric._metrics if labels[:1] == (first,)]
    for labels in doomed:
        metric.remove(*labels)
    if doomed:
        labelled.cache_clear()


def first_label(metric: Any) -> str | None:
    """The name of ``metric``'s first label (None when it has none)."""
    names: tuple[str, ...] = metric._labelnames
    return names[0] if names else None


class ValueHandle:
    """A labelled counter's or gauge's value, moved without prometheus_client's per-call checks.

    Those checks (that the child has its labels, and for counters that the amount is not
    negative) hold by construction here: ``labelled`` made the child with every label, and the
    request path only counts up, or down what it counted up. The value is prometheus_client's
    own (locked; shared through files with several workers), so exposition is unchanged.
    """

    __slots__ = ("_value",)

    def __init__(self, child: Any) -> None:
        self._value = child._value

    def inc(self, amount: float = 1) -> None:
        """Add ``amount``."""
        self._value.inc(amount)

    def dec(self, amount: float = 1) -> None:
        """Subtract ``amount`` (gauges)."""
        self._value.inc(-amount)

    def set(self, value: float) -> None:
        """Set a gauge to ``value``."""
        self._value.set(value)

    def get(self) -> float:
        """The current value."""
        return float(self._value.get())

    def raise_to(self, total: float) -> None:
        """Move a counter up to ``total`` when it is below (a shared state is the truth)."""
        current = self._value.get()
        if total > current:
            self._value.inc(total - current)


class HistogramHandle:
    """A labelled histogram, observed as ``Histogram.observe`` does but without its bucket loop.

    ``Histogram.observe`` walks the bounds in Python for the first one ``>= amount``; here a
    bisection finds it (``searchsorted`` for many values at once), then the same bucket and sum
    values are incremented, so what ``/metrics`` shows is the same.
    """

    __slots__ = ("_bounds", "_buckets", "_sum")

    def __init__(self, child: Any) -> None:
        self._bounds: list[float] = list(child._upper_bounds)
        self._buckets: list[Any] = child._buckets
        self._sum = child._sum

    def observe(self, amount: float) -> None:
        """Observe one value (a NaN counts in the sum and in no bucket, as in prometheus_client)."""
        self._sum.inc(amount)
        if amount == amount:  # not NaN
            self._buckets[bisect.bisect_left(self._bounds, amount)].inc(1)

    def observe_many(self, amounts: np.ndarray) -> None:
        """Observe every value of ``amounts``: one update per bucket, not one call per value."""
        values = np.asarray(amounts, dtype=np.float64).ravel()
        self._sum.inc(float(np.add.reduce(values)))
        slots = np.searchsorted(self._bounds, values)  # NaN sorts last: past the +Inf bucket
        for index, count in enumerate(np.bincount(slots, minlength=len(self._bounds)).tolist()):
            if count and index < len(self._buckets):
                self._buckets[index].inc(count)
