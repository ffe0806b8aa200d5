"""An A/B experiment's verdict from its arms' rewards; pure.

Rewards are in [0, 1]; an arm's sample is the feedback it received (``n``) and their sum
(``s``). For each arm:

- the mean reward ``s / n`` and its 95% Wilson score interval;
- the probability that it is the best arm: each arm's mean has the posterior Beta(1 + s,
  1 + n - s) (Beta-Binomial, a uniform prior), and the share of joint draws in which the arm's
  draw is the largest is its probability (seeded draws: the same data gives the same figure);
- against the first arm (the control), the two-sided p-value of the pooled two-proportion
  z-test.

The sample is too small to call while any arm has fewer than ``min_feedback`` rewards, or fewer
than 10 successes or 10 failures (where the z-test's normal approximation does not hold). An
arm is called best when its probability of being best reaches ``confidence`` and the z-test
against the control (or, for the control, against each other arm) is below ``1 - confidence``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z_95 = 1.959963984540054
"""The standard normal quantile of 0.975: a two-sided 95% interval."""


@dataclass(frozen=True)
class ArmSample:
    """What one arm received: rewards (feedback) and their sum, and how it served."""

    version: str
    feedbacks: float
    rewards: float
    requests: float = 0.0
    errors: float = 0.0
    p99_seconds: float | None = None


@dataclass(frozen=True)
class ArmResult:
    """One arm's figures in the verdict."""

    sample: ArmSample
    mean: float
    interval: tuple[float, float]
    p_best: float
    p_value: float | None
    """Against the control (the first arm); None for the control itself."""


@dataclass(frozen=True)
class Verdict:
    """Every arm's figures, and what they allow one to say."""

    arms: tuple[ArmResult, ...]
    too_small: str | None
    """Why the sample is too small to call; None when it is not."""
    best: str | None
    """The version called best; None while no arm is."""

    @property
    def summary(self) -> str:
        """One line: too small to call, the arm called best, or no difference yet."""
        if self.too_small is not None:
            return f"too small to call: {self.too_small}"
        if self.best is not None:
            return f"{self.best} is best"
        return "no arm is best yet at this sample size: keep the experiment running"


def wilson_interval(successes: float, n: float, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (0, 1 when there is no sample)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_p_value(s1: float, n1: float, s2: float, n2: float) -> float:
    """The two-sided p-value of the pooled two-proportion z-test (1.0 when it is undefined)."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (s1 + s2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 1.0
    z = (s1 / n1 - s2 / n2) / spread
    return math.erfc(abs(z) / math.sqrt(2))


def probability_best(
    samples: Sequence[ArmSample], *, draws: int = 200_000, seed: int = 0
) -> list[float]:
    """Each arm's probability of having the highest mean reward (Beta posteriors)."""
    rng = np.random.default_rng(seed)
    columns = [
        rng.beta(1 + a.rewards, 1 + max(a.feedbacks - a.rewards, 0.0), size=draws) for a in samples
    ]
    wins = np.bincount(np.argmax(np.column_stack(columns), axis=1), minlength=len(samples))
    return (wins / draws).tolist()  # type: ignore[no-any-return]


def verdict(
    samples: Sequence[ArmSample], *, min_feedback: int = 100, confidence: float = 0.95
) -> Verdict:
    """The verdict over ``samples`` (the first is the control)."""
    if len(samples) < 2:
        raise ValueError("an experiment has two arms or more")
    control = samples[0]
    p_best = probability_best(samples)
    results = tuple(
        ArmResult(
            sample=a,
            mean=a.rewards / a.feedbacks if a.feedbacks else float("nan"),
            interval=wilson_interval(a.rewards, a.feedbacks),
            p_best=p,
            p_value=None
            if i == 0
            else two_proportion_p_value(a.rewards, a.feedbacks, control.rewards, control.feedbacks),
        )
        for i, (a, p) in enumerate(zip(samples, p_best, strict=True))
    )
    too_small = _too_small(samples, min_feedback)
    if too_small is not None:
        return Verdict(results, too_small, None)
    alpha = 1 - confidence
    leader = max(range(len(results)), key=lambda i: results[i].p_best)
    if leader == 0:
        significant = all(r.p_value is not None and r.p_value < alpha for r in results[1:])
    else:
        significant = (results[leader].p_value or 1.0) < alpha
    best = results[leader].sample.version if results[leader].p_best >= confidence else None
    return Verdict(results, None, best if significant else None)


def _too_small(samples: Sequence[ArmSample], min_feedback: int) -> str | None:
    for a in samples:
        if a.feedbacks < min_feedback:
            return (
                f"arm {a.version} has {a.feedbacks:.0f} rewards; each arm needs at least "
                f"{min_feedback}"
            )
        if min(a.rewards, a.feedbacks - a.rewards) < 10:
            return (
                f"arm {a.version} has fewer than 10 successes or failures; the test's normal "
                "approximation needs at least 10 of each"
            )
    return None
