"""What the bandit has learned: pulls, feedback and rewards per arm, and who answered which id.

Which arm answered each response id is kept until it expires. The state lives in this process,
or in Redis, shared by every replica.

Arms are named by their model version, so a restart with the same models finds its state again.
Feedback is recorded once per id: a second reward for the same id changes nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from typing_extensions import override

from predictor.bandit.policies import ArmStats
from predictor.errors import ConfigError, FeedbackNotFoundError


class BanditState(Protocol):
    """Where pulls and rewards are kept."""

    def pulled(self, arm: int, response_id: str) -> None:
        """Arm ``arm`` answered the response ``response_id``."""
        ...

    def rewarded(self, response_id: str, reward: float) -> bool:
        """Record the reward for a response; False when it was recorded before.

        Raises:
            FeedbackNotFoundError: no response of that id, or it expired.
        """
        ...

    def stats(self) -> list[ArmStats]:
        """Each arm's record, in arm order."""
        ...


class MemoryState(BanditState):
    """The state of this process (lost at restart; each replica learns alone)."""

    def __init__(self, arms: Sequence[str], *, ttl_s: float, clock: Any = time.monotonic) -> None:
        self._arms = list(arms)
        self._ttl = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._pulls = [0] * len(arms)
        self._feedbacks = [0] * len(arms)
        self._rewards = [0.0] * len(arms)
        self._pending: dict[str, tuple[int, float]] = {}
        self._rewarded: dict[str, float] = {}

    @override
    def pulled(self, arm: int, response_id: str) -> None:
        now = self._clock()
        with self._lock:
            self._pulls[arm] += 1
            self._pending[response_id] = (arm, now + self._ttl)
            if len(self._pending) % 1024 == 0:
                self._forget(now)

    @override
    def rewarded(self, response_id: str, reward: float) -> bool:
        now = self._clock()
        with self._lock:
            if response_id in self._rewarded and self._rewarded[response_id] > now:
                return False
            found = self._pending.get(response_id)
            if found is None or found[1] <= now:
                raise FeedbackNotFoundError(
                    "no response with that id, or it expired; feedback names the id a response gave"
                )
            arm, expires = found
            self._feedbacks[arm] += 1
            self._rewards[arm] += reward
            self._rewarded[response_id] = expires
            return True

    @override
    def stats(self) -> list[ArmStats]:
        with self._lock:
            return [
                ArmStats(p, f, r)
                for p, f, r in zip(self._pulls, self._feedbacks, self._rewards, strict=True)
            ]

    def _forget(self, now: float) -> None:
        self._pending = {k: v for k, v in self._pending.items() if v[1] > now}
        self._rewarded = {k: v for k, v in self._rewarded.items() if v > now}


class RedisState(BanditState):
    """The state in Redis (``redis://host:port/db``), shared by replicas and kept over restarts.

    Keys, under ``predictor:bandit:<model>``: hashes ``pulls``, ``feedbacks`` and ``rewards`` by
    arm version; ``id:<response id>`` (the arm, expiring) and ``rewarded:<response id>``.
    """

    def __init__(self, url: str, model: str, arms: Sequence[str], *, ttl_s: float) -> None:
        try:
            import redis
        except ImportError as e:
            raise ConfigError(
                "bandit_state redis:// needs the redis client: pip install "
                "'kserve-sklearn-predictor[bandit]'"
            ) from e
        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, decode_responses=True)
        self._prefix = f"predictor:bandit:{model}"
        self._arms = list(arms)
        self._ttl = max(1, int(ttl_s))
        try:
            self._redis.ping()
        except redis.RedisError as e:
            where = url.split("@")[-1]
            raise ConfigError(f"bandit_state: Redis at {where} did not answer ({e})") from e

    @override
    def pulled(self, arm: int, response_id: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hincrby(f"{self._prefix}:pulls", self._arms[arm], 1)
        pipe.set(f"{self._prefix}:id:{response_id}", arm, ex=self._ttl)
        pipe.execute()

    @override
    def rewarded(self, response_id: str, reward: float) -> bool:
        arm = self._redis.get(f"{self._prefix}:id:{response_id}")
        if arm is None:
            raise FeedbackNotFoundError(
                "no response with that id, or it expired; feedback names the id a response gave"
            )
        first = self._redis.set(f"{self._prefix}:rewarded:{response_id}", 1, nx=True, ex=self._ttl)
        if not first:
            return False
        version = self._arms[int(arm)]
        pipe = self._redis.pipeline(transaction=True)
        pipe.hincrby(f"{self._prefix}:feedbacks", version, 1)
        pipe.hincrbyfloat(f"{self._prefix}:rewards", version, reward)
        pipe.execute()
        return True

    @override
    def stats(self) -> list[ArmStats]:
        pipe = self._redis.pipeline(transaction=False)
        for name in ("pulls", "feedbacks", "rewards"):
            pipe.hmget(f"{self._prefix}:{name}", self._arms)
        pulls, feedbacks, rewards = pipe.execute()
        return [
            ArmStats(int(p or 0), int(f or 0), float(r or 0.0))
            for p, f, r in zip(pulls, feedbacks, rewards, strict=True)
        ]
