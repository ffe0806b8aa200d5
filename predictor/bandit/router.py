"""The bandit: picks the arm for each request, records pulls and feedback, exports per-arm metrics.

With the ``fixed`` policy it is an A/B experiment's router: fixed shares, and a request with a
sticky key goes to the arm that keeps that key (``bandit.sticky``), in every replica alike.

The arms' records are read from the state at most every ``refresh_s`` (Redis is not asked on
every request); the policy picks from them. Metrics per arm (``metrics.series``, labelled by
model and the arm's version): pulls, feedback received, rewards summed, and the current
selection probability.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from predictor.bandit.policies import ArmStats, choose, selection_probabilities
from predictor.bandit.state import BanditState
from predictor.bandit.sticky import sticky_arm
from predictor.errors import PayloadError
from predictor.metrics.handles import labelled
from predictor.metrics.series import (
    BANDIT_FEEDBACK,
    BANDIT_PROBABILITY,
    BANDIT_PULLS,
    BANDIT_REWARDS,
)


def reward_of(body: Any) -> tuple[str, float]:
    """The response id and reward of a feedback body ``{"id": "...", "reward": 0..1}``.

    Raises:
        PayloadError: not an object with a string id and a number from 0 to 1.
    """
    if not isinstance(body, dict):
        raise PayloadError('expected a JSON object {"id": "<response id>", "reward": <0..1>}')
    response_id, reward = body.get("id"), body.get("reward")
    if not isinstance(response_id, str) or not response_id:
        raise PayloadError("expected 'id': the id of the response the reward is for")
    if isinstance(reward, bool) or not isinstance(reward, int | float) or math.isnan(reward):
        raise PayloadError("expected 'reward': a number from 0 to 1")
    if not 0.0 <= float(reward) <= 1.0:
        raise PayloadError("expected 'reward' from 0 to 1; got a number outside that range")
    return response_id, float(reward)


class Bandit:
    """Routes requests between arms with a policy, learning from feedback."""

    def __init__(
        self,
        *,
        model: str,
        versions: Sequence[str],
        policy: str,
        state: BanditState,
        epsilon: float = 0.1,
        weights: Sequence[float] = (),
        sticky: bool = False,
        refresh_s: float = 0.2,
        seed: int | None = None,
    ) -> None:
        self.model = model
        self.versions = list(versions)
        self.policy = policy
        self.weights = list(weights)
        """The ``fixed`` policy's weights, in the arms' order."""
        self.sticky = sticky
        """Whether a request's key (the sticky header's value) picks its arm by hashing."""
        self.state = state
        self.epsilon = epsilon
        self.refresh_s = refresh_s
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._stats: list[ArmStats] | None = [ArmStats() for _ in versions]
        self._unknown = [ArmStats() for _ in versions]
        self._read_at = -math.inf
        for version in self.versions:  # at 0 from the start, not "no data"
            for counter in (BANDIT_PULLS, BANDIT_FEEDBACK, BANDIT_REWARDS):
                counter.labels(model, version)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def choose(self, key: str | None = None) -> int:
        """The arm that answers the next request (an experiment's: the one that keeps ``key``)."""
        with self._lock:
            now = time.monotonic()
            if now - self._read_at >= self.refresh_s:  # every request refreshes the export
                self._stats = self.state.stats()
                self._read_at = now
                self._export()
            if key is not None and self.sticky:
                return sticky_arm(self.model, self.versions, self.weights, key)
            if self.policy == "fixed":  # the shares hold whatever the state says
                return choose(self.policy, self._unknown, self._rng, weights=self.weights)
            if self._stats is None:  # nothing known: the shared state is down and was never read
                return int(self._rng.integers(len(self.versions)))
            return choose(self.policy, self._stats, self._rng, epsilon=self.epsilon)

    def pulled(self, arm: int, response_id: str) -> None:
        """Arm ``arm`` answered ``response_id``."""
        self.state.pulled(arm, response_id)
        labelled(BANDIT_PULLS, self.model, self.versions[arm]).inc()

    def feedback(self, body: Any) -> dict[str, Any]:
        """Record the reward a feedback body carries; the answer to send back.

        Raises:
            PayloadError: the body is not a valid feedback (400).
            FeedbackNotFoundError: unknown or expired id (404).
            StateUnavailableError: the shared state is unreachable; nothing was recorded (503).
        """
        response_id, reward = reward_of(body)
        recorded = self.state.rewarded(response_id, reward)
        if recorded:
            self._read_at = -math.inf  # learn from it at the next request
        return {"id": response_id, "recorded": recorded}

    def _export(self) -> None:
        if self._stats is None:
            return
        probabilities = selection_probabilities(
            self.policy, self._stats, self._rng, epsilon=self.epsilon, draws=500,
            weights=self.weights,
        )  # fmt: skip
        for version, stats, p in zip(self.versions, self._stats, probabilities, strict=True):
            labelled(BANDIT_PROBABILITY, self.model, version).set(p)
            labelled(BANDIT_FEEDBACK, self.model, version).raise_to(stats.feedbacks)
            labelled(BANDIT_REWARDS, self.model, version).raise_to(stats.rewards)
