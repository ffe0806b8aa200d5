"""A strategy whose answers are watched for drift: each lane's rows go to its model's monitor.

The inner strategy answers; each lane whose model carries a drift reference is wrapped so that
the rows it answered, and what it answered, are offered to that model's ``DriftMonitor``, which
summarises them off the request path. Lanes of models without a reference are left as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from predictor.drift.monitor import DriftMonitor
from predictor.inference.batch import Batch
from predictor.loading.loader import LoadedModel
from predictor.sections import Drift
from predictor.serving.strategy import Answer, Lane, Strategy


class WatchedLane:
    """A lane whose answers are offered to its model's drift monitor."""

    def __init__(self, inner: Lane, monitor: DriftMonitor) -> None:
        self._inner = inner
        self.monitor = monitor

    @property
    def loaded(self) -> LoadedModel:
        """The inner lane's model."""
        return self._inner.loaded

    async def answer(self, batch: Batch, request_id: str | None) -> Answer:
        """The inner lane's answer, offered to the monitor."""
        answer = await self._inner.answer(batch, request_id)
        self.monitor.offer(batch.features, answer.results)
        return answer

    def answer_blocking(self, batch: Batch, request_id: str | None) -> Answer:
        """The inner lane's answer on this thread, offered to the monitor."""
        answer = self._inner.answer_blocking(batch, request_id)
        self.monitor.offer(batch.features, answer.results)
        return answer


class Watched:
    """``inner`` answers; the models with a reference are watched for drift."""

    def __init__(self, inner: Strategy, monitors: dict[int, DriftMonitor]) -> None:
        self._inner = inner
        self.monitors = monitors
        """Each watched lane's monitor, by the lane's position in ``inner.lanes()``."""
        self._wrap()

    def _wrap(self) -> None:
        """Each watched lane, wrapped once (by identity, which pickling changes: rebuilt after)."""
        lanes = self._inner.lanes()
        self._lanes = {
            id(lanes[i]): WatchedLane(lanes[i], monitor) for i, monitor in self.monitors.items()
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._wrap()

    @property
    def face(self) -> LoadedModel:
        """The inner strategy's face."""
        return self._inner.face

    def choose(self) -> Lane:
        """The inner strategy's choice, wrapped when its model is watched."""
        lane = self._inner.choose()
        return self._lanes.get(id(lane), lane)

    def lanes(self) -> Sequence[Lane]:
        """The inner strategy's lanes."""
        return self._inner.lanes()

    def feedback(self, body: Any) -> dict[str, Any]:
        """The inner strategy's feedback."""
        return self._inner.feedback(body)

    def start(self, name: str) -> None:
        """The inner strategy's background work."""
        self._inner.start(name)

    def stop(self) -> None:
        """Stop watching; then the inner strategy."""
        for monitor in self.monitors.values():
            monitor.stop()
        self._inner.stop()


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
