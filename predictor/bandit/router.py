"""The bandit: picks the arm for each request, records pulls and feedback, exports per-arm metrics.

The arms' records are read from the state at most every ``refresh_s`` (Redis is not asked on
every request); the policy picks from them. Metrics per arm (labelled by model and the arm's
version): pulls, feedback received, rewards summed, and the current selection probability.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge

from predictor.bandit.policies import ArmStats, choose, selection_probabilities
from predictor.bandit.state import BanditState
from predictor.errors import PayloadError
from predictor.metric_handles import labelled

PULLS = Counter("predictor_bandit_pulls", "Requests answered by each arm.", ["model", "version"])
FEEDBACK = Counter(
    "predictor_bandit_feedback", "Rewards received for each arm.", ["model", "version"]
)
REWARDS = Counter(
    "predictor_bandit_rewards", "Sum of the rewards received for each arm.", ["model", "version"]
)
PROBABILITY = Gauge(
    "predictor_bandit_selection_probability",
    "How likely each arm is to answer the next request.",
    ["model", "version"],
    multiprocess_mode="mostrecent",
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
        refresh_s: float = 0.2,
        seed: int | None = None,
    ) -> None:
        self.model = model
        self.versions = list(versions)
        self.policy = policy
        self.state = state
        self.epsilon = epsilon
        self.refresh_s = refresh_s
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._stats: list[ArmStats] = [ArmStats() for _ in versions]
        self._read_at = -math.inf

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def choose(self) -> int:
        """The arm that answers the next request."""
        with self._lock:
            now = time.monotonic()
            if now - self._read_at >= self.refresh_s:
                self._stats = self.state.stats()
                self._read_at = now
                self._export()
            return choose(self.policy, self._stats, self._rng, epsilon=self.epsilon)

    def pulled(self, arm: int, response_id: str) -> None:
        """Arm ``arm`` answered ``response_id``."""
        self.state.pulled(arm, response_id)
        labelled(PULLS, self.model, self.versions[arm]).inc()

    def feedback(self, body: Any) -> dict[str, Any]:
        """Record the reward a feedback body carries; the answer to send back.

        Raises:
            PayloadError: the body is not a valid feedback (400).
            FeedbackNotFoundError: unknown or expired id (404).
        """
        response_id, reward = reward_of(body)
        recorded = self.state.rewarded(response_id, reward)
        if recorded:
            self._read_at = -math.inf  # learn from it at the next request
        return {"id": response_id, "recorded": recorded}

    def _export(self) -> None:
        probabilities = selection_probabilities(
            self.policy, self._stats, self._rng, epsilon=self.epsilon, draws=500
        )
        for version, stats, p in zip(self.versions, self._stats, probabilities, strict=True):
            labelled(PROBABILITY, self.model, version)._value.set(p)
            _set_total(FEEDBACK, self.model, version, stats.feedbacks)
            _set_total(REWARDS, self.model, version, stats.rewards)


def _set_total(counter: Counter, model: str, version: str, total: float) -> None:
    """Move a counter up to the state's total (the state, maybe shared, is the truth)."""
    value = counter.labels(model, version)._value
    if total > value.get():
        value.inc(total - value.get())
