"""Which arm answers the next request: Thompson sampling, epsilon-greedy, UCB1 or fixed; pure.

Each arm's record is its pulls (requests it answered), the feedback it got (rewards in [0, 1])
and their sum. Only pulls with feedback tell anything about an arm, so the estimates use those;
a pull still waiting for its reward is not counted as a failure.

- ``thompson``: draw from each arm's Beta(1 + rewards, 1 + feedbacks - rewards) and take the
  best draw; explores exactly as much as the uncertainty warrants.
- ``epsilon_greedy``: the arm with the best mean reward, or with probability ``epsilon`` any arm.
- ``ucb1``: the best mean reward plus sqrt(2 ln(total feedback) / feedback of the arm); every arm
  is tried once first.
- ``fixed``: an A/B experiment's fixed shares: each arm with probability weight / total, whatever
  the feedback says (the feedback is for the verdict, ``rollout.experiment``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

POLICIES = ("thompson", "epsilon_greedy", "ucb1", "fixed")


@dataclass(frozen=True)
class ArmStats:
    """What one arm has done: requests answered, feedback received, the sum of its rewards."""

    pulls: int = 0
    feedbacks: int = 0
    rewards: float = 0.0

    @property
    def mean(self) -> float:
        """Mean reward over the feedback received (0.5 before any)."""
        return self.rewards / self.feedbacks if self.feedbacks else 0.5


def choose(
    policy: str,
    arms: Sequence[ArmStats],
    rng: np.random.Generator,
    *,
    epsilon: float = 0.1,
    weights: Sequence[float] = (),
) -> int:
    """The index of the arm that answers the next request (``weights``: for ``fixed``)."""
    if policy == "fixed":
        return int(rng.choice(len(arms), p=_shares(weights)))
    if policy == "thompson":
        draws = [rng.beta(1 + a.rewards, 1 + a.feedbacks - a.rewards) for a in arms]
        return int(np.argmax(draws))
    if policy == "epsilon_greedy":
        if rng.random() < epsilon:
            return int(rng.integers(len(arms)))
        return _best([a.mean for a in arms], rng)
    if policy == "ucb1":
        untried = [i for i, a in enumerate(arms) if a.feedbacks == 0]
        if untried:
            return untried[0]
        total = sum(a.feedbacks for a in arms)
        bounds = [a.mean + math.sqrt(2 * math.log(total) / a.feedbacks) for a in arms]
        return _best(bounds, rng)
    raise ValueError(f"unknown bandit policy; expected one of {', '.join(POLICIES)}")


def selection_probabilities(
    policy: str,
    arms: Sequence[ArmStats],
    rng: np.random.Generator,
    *,
    epsilon: float = 0.1,
    draws: int = 2000,
    weights: Sequence[float] = (),
) -> list[float]:
    """How likely each arm is to answer the next request (Thompson's by sampling)."""
    n = len(arms)
    if policy == "fixed":
        return _shares(weights).tolist()  # type: ignore[no-any-return]
    if policy == "thompson":
        samples = np.column_stack(
            [rng.beta(1 + a.rewards, 1 + a.feedbacks - a.rewards, size=draws) for a in arms]
        )
        counts = np.bincount(np.argmax(samples, axis=1), minlength=n)
        return (counts / draws).tolist()  # type: ignore[no-any-return]
    if policy == "epsilon_greedy":
        best = _ties([a.mean for a in arms])
        return [epsilon / n + ((1 - epsilon) / len(best) if i in best else 0.0) for i in range(n)]
    untried = [i for i, a in enumerate(arms) if a.feedbacks == 0]
    if untried:
        return [1.0 if i == untried[0] else 0.0 for i in range(n)]
    total = sum(a.feedbacks for a in arms)
    best = _ties([a.mean + math.sqrt(2 * math.log(total) / a.feedbacks) for a in arms])
    return [1.0 / len(best) if i in best else 0.0 for i in range(n)]


def _shares(weights: Sequence[float]) -> np.ndarray:
    total = float(sum(weights))
    return np.asarray(weights, dtype=float) / total


def _ties(values: Sequence[float]) -> list[int]:
    top = max(values)
    return [i for i, v in enumerate(values) if v == top]


def _best(values: Sequence[float], rng: np.random.Generator) -> int:
    """The index of the largest value, ties broken at random."""
    tied = _ties(values)
    return tied[0] if len(tied) == 1 else int(rng.choice(tied))
