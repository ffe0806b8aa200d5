"""A strategy whose answers are watched for drift: each lane's rows go to its model's monitor.

Each lane whose model carries a drift reference is tapped (``serving.tapped``) so that the rows
it answered, and what it answered, are offered to that model's ``DriftMonitor``, which
summarises them off the request path. Lanes of models without a reference are left as they are.
"""

from __future__ import annotations

import functools

from predictor.drift.monitor import DriftMonitor
from predictor.inference.batch import Batch
from predictor.sections import Drift
from predictor.serving.strategy import Answer, Strategy
from predictor.serving.tapped import Tapped


def offer_to_monitor(
    monitor: DriftMonitor, request_id: str | None, batch: Batch, answer: Answer
) -> None:
    """A lane's tap: the rows and the answer, offered to the drift monitor."""
    monitor.offer(batch.features, answer.results)


class Watched(Tapped):
    """``inner`` answers; the models with a reference are watched for drift."""

    def __init__(self, inner: Strategy, monitors: dict[int, DriftMonitor]) -> None:
        self.monitors = monitors
        """Each watched lane's monitor, by the lane's position in ``inner.lanes()``."""
        taps = {i: functools.partial(offer_to_monitor, m) for i, m in monitors.items()}
        super().__init__(inner, taps)

    def stop(self) -> None:
        """Stop watching; then the inner strategy."""
        for monitor in self.monitors.values():
            monitor.stop()
        super().stop()


def watched(name: str, strategy: Strategy, drift: Drift) -> Strategy:
    """``strategy`` with drift watched where its models carry a reference (as it is otherwise)."""
    if drift.window_rows == 0:
        return strategy
    monitors = {
        i: DriftMonitor(
            name,
            lane.loaded.version,
            lane.loaded.reference,
            lane.loaded.signature,
            window_rows=drift.window_rows,
            sample_rate=drift.sample_rate,
        )
        for i, lane in enumerate(strategy.lanes())
        if lane.loaded.reference is not None and not lane.loaded.signature.text
    }
    return Watched(strategy, monitors) if monitors else strategy
