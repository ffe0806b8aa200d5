"""The A/B verdict's numbers against independent calculations with SciPy, on simulated rewards.

The mean and its Wilson interval against ``scipy.stats.binomtest(...).proportion_ci``; the
two-proportion p-value against the chi-square test of the 2x2 table without continuity
correction (the same test, computed another way); each arm's probability of being best against
numerical integration of the Beta posteriors. Then what the verdict says: too small to call, no
arm best yet, or an arm called best.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from predictor.rollout.verdict import ArmSample, verdict

pytestmark = pytest.mark.timeout(60)


def simulated(rates: dict[str, float], n: int, seed: int) -> list[ArmSample]:
    rng = np.random.default_rng(seed)
    return [
        ArmSample(version=v, feedbacks=n, rewards=float((rng.random(n) < p).sum()))
        for v, p in rates.items()
    ]


def p_best_by_integration(samples: list[ArmSample]) -> list[float]:
    posteriors = [stats.beta(1 + a.rewards, 1 + a.feedbacks - a.rewards) for a in samples]

    def density(x: float, i: int) -> float:
        others = [p.cdf(x) for j, p in enumerate(posteriors) if j != i]
        return float(posteriors[i].pdf(x) * np.prod(others))

    return [
        integrate.quad(density, 0, 1, args=(i,), limit=200, points=[0.1, 0.12, 0.14])[0]
        for i in range(len(samples))
    ]


def test_every_figure_matches_an_independent_calculation() -> None:
    samples = simulated({"1.0.0": 0.10, "1.1.0": 0.12, "1.2.0": 0.13}, n=3000, seed=7)
    found = verdict(samples)
    expected_best = p_best_by_integration(samples)
    control = samples[0]
    for arm, sample, best in zip(found.arms, samples, expected_best, strict=True):
        k, n = int(sample.rewards), int(sample.feedbacks)
        assert arm.mean == pytest.approx(k / n)
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert arm.interval == pytest.approx((ci.low, ci.high), abs=1e-9)
        assert arm.p_best == pytest.approx(best, abs=0.005)  # 200,000 draws: sd below 0.0012
        if arm.p_value is None:
            assert sample is control
            continue
        table = [[k, n - k], [int(control.rewards), int(control.feedbacks - control.rewards)]]
        chi2 = stats.chi2_contingency(table, correction=False)
        assert arm.p_value == pytest.approx(chi2.pvalue, rel=1e-9)
    assert sum(a.p_best for a in found.arms) == pytest.approx(1.0)


def test_a_small_sample_is_too_small_to_call() -> None:
    found = verdict(simulated({"1.0.0": 0.3, "1.1.0": 0.7}, n=60, seed=1))
    assert found.best is None
    assert found.summary == (
        "too small to call: arm 1.0.0 has 60 rewards; each arm needs at least 100"
    )
    rare = verdict(simulated({"1.0.0": 0.002, "1.1.0": 0.004}, n=1000, seed=1))
    assert rare.too_small is not None and "fewer than 10 successes" in rare.too_small


def test_equal_arms_are_not_called_and_a_clearly_better_arm_is() -> None:
    same = verdict(simulated({"1.0.0": 0.2, "1.1.0": 0.2}, n=2000, seed=3))
    assert same.too_small is None and same.best is None
    assert same.summary.startswith("no arm is best yet")
    better = verdict(simulated({"1.0.0": 0.2, "1.1.0": 0.26}, n=2000, seed=3))
    assert better.best == "1.1.0" and better.summary == "1.1.0 is best"
    assert better.arms[1].p_best > 0.95 and (better.arms[1].p_value or 1) < 0.05
    worse = verdict(simulated({"1.0.0": 0.26, "1.1.0": 0.2}, n=2000, seed=3))
    assert worse.best == "1.0.0"  # the control, better than every other arm


def test_the_report_reads_shared_totals_once_and_picks_the_control() -> None:
    from predictor.rollout.errors import CanaryImpossibleError
    from predictor.rollout.experiment import queries, samples_from

    shared, alone = queries("taxi", "1h", shared=True), queries("taxi", "1h", shared=False)
    assert shared["feedbacks"] == 'max by (version) (predictor_bandit_feedback_total{model="taxi"})'
    assert alone["feedbacks"] == 'sum by (version) (predictor_bandit_feedback_total{model="taxi"})'
    assert alone["requests"] == shared["requests"]  # each pod counts its own requests
    assert "[1h]" in alone["p99"]
    figures = {
        "feedbacks": [({"version": "1.0.0"}, 900.0), ({"version": "1.1.0"}, 100.0)],
        "rewards": [({"version": "1.0.0"}, 270.0), ({"version": "1.1.0"}, 40.0)],
        "share": [({"version": "1.0.0"}, 0.1), ({"version": "1.1.0"}, 0.9)],
        "requests": [({"version": "1.1.0"}, 1000.0)],
        "errors": [],
        "p99": [({"version": "1.1.0"}, float("nan"))],
    }
    by_share = samples_from(figures)
    assert [s.version for s in by_share] == ["1.1.0", "1.0.0"]  # the largest share is the control
    assert by_share[0].p99_seconds is None and by_share[1].requests == 0.0
    assert [s.version for s in samples_from(figures, "1.0.0")] == ["1.0.0", "1.1.0"]
    with pytest.raises(CanaryImpossibleError, match="no arm of the experiment has that version"):
        samples_from(figures, "9.9.9")
