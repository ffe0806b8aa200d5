"""Routing on when the shared state is down: the last state read, pulls held, feedback refused.

``FallbackState`` wraps a shared state (Redis) whose calls raise ``StateUnavailableError`` when it
cannot be reached. While it is down:

- requests are still routed: from the last state read (with the pulls made since), or, when none
  was ever read, uniformly; ``predictor_bandit_fallback_routed_total{source}`` counts which, and
  one log line says so when it starts;
- which arm answered each response is held here (at most ``max_held`` of them), so that
  feedback for it can be recorded once the state is back;
- feedback answers 503 with ``Retry-After``: it is never acknowledged and then dropped.

The state is asked again at most every ``retry_s``, never on every request. When it answers, the
held pulls are written first, and routing goes on from what it holds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from typing_extensions import override

from predictor.bandit.policies import ArmStats
from predictor.bandit.state import BanditState
from predictor.errors import StateUnavailableError
from predictor.metrics.handles import labelled
from predictor.metrics.series import BANDIT_FALLBACK_ROUTED, BANDIT_PULLS_HELD, BANDIT_STATE_UP

logger = logging.getLogger(__name__)


class FallbackState(BanditState):
    """A shared state that routing survives: see the module's description."""

    def __init__(
        self,
        shared: BanditState,
        *,
        model: str,
        arms: int,
        retry_s: float = 1.0,
        max_held: int = 100_000,
        clock: Any = time.monotonic,
    ) -> None:
        self._shared = shared
        self._model = model
        self._arms = arms
        self._retry_s = retry_s
        self._max_held = max_held
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._next_try = 0.0
        self._last: list[ArmStats] | None = None
        self._held: OrderedDict[str, int] = OrderedDict()
        self._lost_held = 0
        labelled(BANDIT_STATE_UP, model).set(1)

    @property
    def is_down(self) -> bool:
        """Whether the shared state was unreachable when last asked."""
        return self._down_since is not None

    @override
    def pulled(self, arm: int, response_id: str) -> None:
        if self._may_try():
            try:
                self._write_held()
                self._shared.pulled(arm, response_id)
                self._up()
                return
            except StateUnavailableError as e:
                self._down(e)
        self._hold(arm, response_id)

    @override
    def rewarded(self, response_id: str, reward: float) -> bool:
        if not self._may_try():
            raise StateUnavailableError(
                "the bandit's state (Redis) is unreachable; the feedback was not recorded, "
                "send it again"
            )
        try:
            self._write_held()
            recorded = self._shared.rewarded(response_id, reward)
        except StateUnavailableError as e:
            self._down(e)
            raise
        self._up()
        return recorded

    @override
    def stats(self) -> list[ArmStats] | None:
        if self._may_try():
            try:
                self._write_held()
                stats = self._shared.stats()
            except StateUnavailableError as e:
                self._down(e)
            else:
                self._up()
                self._last = stats
                return stats
        return self._fallback()

    def _fallback(self) -> list[ArmStats] | None:
        with self._lock:
            held = [0] * self._arms
            for arm in self._held.values():
                held[arm] += 1
        if self._last is None:
            return None
        return [
            ArmStats(s.pulls + h, s.feedbacks, s.rewards)
            for s, h in zip(self._last, held, strict=True)
        ]

    def _may_try(self) -> bool:
        return self._down_since is None or self._clock() >= self._next_try

    def _hold(self, arm: int, response_id: str) -> None:
        source = "last_known" if self._last is not None else "uniform"
        labelled(BANDIT_FALLBACK_ROUTED, self._model, source).inc()
        with self._lock:
            self._held[response_id] = arm
            while len(self._held) > self._max_held:
                self._held.popitem(last=False)
                self._lost_held += 1
            labelled(BANDIT_PULLS_HELD, self._model).set(len(self._held))

    def _write_held(self) -> None:
        """Write the pulls held while the state was down (raises if it still is)."""
        with self._lock:
            held = list(self._held.items())
        if not held:
            return
        self._shared.pulled_many([(arm, rid) for rid, arm in held])
        with self._lock:
            for rid, _ in held:
                self._held.pop(rid, None)
            labelled(BANDIT_PULLS_HELD, self._model).set(len(self._held))
        logger.info("bandit state: %d pull(s) held while it was down are written", len(held))

    def _down(self, error: StateUnavailableError) -> None:
        self._next_try = self._clock() + self._retry_s
        if self._down_since is None:
            self._down_since = self._clock()
            labelled(BANDIT_STATE_UP, self._model).set(0)
            how = "the last state read" if self._last is not None else "uniformly"
            logger.error(
                "bandit state unreachable (%s): routing from %s, feedback answered 503", error, how
            )

    def _up(self) -> None:
        if self._down_since is not None:
            logger.info(
                "bandit state reachable again after %.1fs%s",
                self._clock() - self._down_since,
                f"; {self._lost_held} held pull(s) were dropped" if self._lost_held else "",
            )
            self._down_since = None
            self._lost_held = 0
            labelled(BANDIT_STATE_UP, self._model).set(1)
