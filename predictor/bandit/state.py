"""What the bandit has learned: pulls, feedback and rewards per arm, and who answered which id.

Which arm answered each response id is kept until it expires. The state lives in this process,
or in Redis, shared by every replica.

Arms are named by their model version, so a restart with the same models finds its state again.
Feedback is recorded once per id: a second reward for the same id changes nothing.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from typing_extensions import override

from predictor.bandit.policies import ArmStats
from predictor.errors import ConfigError, FeedbackNotFoundError, StateUnavailableError


class BanditState(Protocol):
    """Where pulls and rewards are kept."""

    def pulled(self, arm: int, response_id: str) -> None:
        """Arm ``arm`` answered the response ``response_id``."""
        ...

    def pulled_many(self, pulls: Sequence[tuple[int, str]]) -> None:
        """Several ``(arm, response id)`` pulls at once."""
        for arm, response_id in pulls:
            self.pulled(arm, response_id)

    def rewarded(self, response_id: str, reward: float) -> bool:
        """Record the reward for a response; False when it was recorded before.

        Raises:
            FeedbackNotFoundError: no response of that id, or it expired.
        """
        ...

    def stats(self) -> list[ArmStats] | None:
        """Each arm's record, in arm order; None when nothing is known (route uniformly)."""
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
    arm version; ``id:<response id>`` (the arm, expiring) and ``rewarded:<response id>``. A
    reward is recorded by one script, so it is counted whole or not at all. Every Redis failure
    is a ``StateUnavailableError`` (``bandit.fallback`` routes on without it).
    """

    def __init__(self, url: str, model: str, arms: Sequence[str], *, ttl_s: float) -> None:
        try:
            import redis
        except ImportError as e:
            raise ConfigError(
                "bandit_state redis:// needs the redis client: pip install "
                "'kserve-sklearn-predictor[bandit]'"
            ) from e
        self._redis = redis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=0.5, decode_responses=True
        )
        self._error: type[Exception] = redis.RedisError
        self._where = url.split("@")[-1]
        self._prefix = f"predictor:bandit:{model}"
        self._arms = list(arms)
        self._ttl = max(1, int(ttl_s))
        self._reward: Callable[..., Any] = self._redis.register_script(REWARD_SCRIPT)
        try:
            self._redis.ping()
        except redis.RedisError as e:
            raise ConfigError(f"bandit_state: Redis at {self._where} did not answer ({e})") from e

    @contextmanager
    def _reached(self) -> Iterator[None]:
        try:
            yield
        except self._error as e:
            raise StateUnavailableError(
                f"Redis at {self._where} did not answer ({type(e).__name__})"
            ) from e

    @override
    def pulled(self, arm: int, response_id: str) -> None:
        self.pulled_many([(arm, response_id)])

    @override
    def pulled_many(self, pulls: Sequence[tuple[int, str]]) -> None:
        with self._reached():
            pipe = self._redis.pipeline(transaction=True)
            for arm, count in Counter(arm for arm, _ in pulls).items():
                pipe.hincrby(f"{self._prefix}:pulls", self._arms[arm], count)
            for arm, response_id in pulls:
                pipe.set(f"{self._prefix}:id:{response_id}", arm, ex=self._ttl)
            pipe.execute()

    @override
    def rewarded(self, response_id: str, reward: float) -> bool:
        keys = [
            f"{self._prefix}:id:{response_id}",
            f"{self._prefix}:rewarded:{response_id}",
            f"{self._prefix}:feedbacks",
            f"{self._prefix}:rewards",
        ]
        with self._reached():
            outcome = int(self._reward(keys=keys, args=[reward, self._ttl, *self._arms]))
        if outcome < 0:
            raise FeedbackNotFoundError(
                "no response with that id, or it expired; feedback names the id a response gave"
            )
        return outcome == 1

    @override
    def stats(self) -> list[ArmStats]:
        with self._reached():
            pipe = self._redis.pipeline(transaction=False)
            for name in ("pulls", "feedbacks", "rewards"):
                pipe.hmget(f"{self._prefix}:{name}", self._arms)
            pulls, feedbacks, rewards = pipe.execute()
        return [
            ArmStats(int(p or 0), int(f or 0), float(r or 0.0))
            for p, f, r in zip(pulls, feedbacks, rewards, strict=True)
        ]


REWARD_SCRIPT = """
local arm = redis.call('GET', KEYS[1])
if not arm then return -1 end
if not redis.call('SET', KEYS[2], 1, 'NX', 'EX', tonumber(ARGV[2])) then return 0 end
local version = ARGV[3 + tonumber(arm)]
redis.call('HINCRBY', KEYS[3], version, 1)
redis.call('HINCRBYFLOAT', KEYS[4], version, ARGV[1])
return 1
"""
"""A reward, recorded atomically: -1 unknown id, 0 rewarded before, 1 recorded."""
