"""The automated canary: step the traffic up, judge each step from metrics, promote or roll back.

``run_auto`` drives a ``Rollout`` (which makes each change) through the steps. At each step it
waits for the status to show the split, then compares the canary's metrics with the stable
model's (``analysis.decide``): a pass moves on, a failure rolls back, and an inconclusive
window (too little traffic, or Prometheus down or failing) extends the analysis; when it stays
inconclusive, the canary is left where it is, since no data is no reason to roll back, and
never promoted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from predictor.rollout.analysis import FAIL, PASS, AnalysisConfig, MetricSource, decide, snapshot
from predictor.rollout.controller import Rollout
from predictor.rollout.errors import (
    CanaryImpossibleError,
    MetricsUnavailableError,
    RolloutError,
    RolloutFailedError,
    StepTimeoutError,
)
from predictor.rollout.status import canary_percent_requested, model_refs
from predictor.rollout.versions import resolve, served_versions


@dataclass(frozen=True)
class Comparison:
    """What each analysis compares: one model's two versions over a window of metrics."""

    model: str
    stable_version: str
    canary_version: str
    window: str


def run_auto(
    rollout: Rollout,
    *,
    steps: Sequence[int],
    interval_s: float,
    config: AnalysisConfig,
    metrics: MetricSource,
    step_timeout: float,
) -> None:
    """Step the canary through ``steps``, analysing at each; promote at the end or roll back.

    Raises:
        CanaryImpossibleError: no canary takes traffic yet.
        RolloutFailedError: rolled back (analysis failed, or a step never showed), or the
            analysis stayed inconclusive (then the canary is left where it is).
    """
    isvc = rollout.read()
    current = canary_percent_requested(isvc)
    if current in (None, 0):
        raise CanaryImpossibleError(
            f"{rollout.ref} has no canary taking traffic; run `start` first"
        )
    comparison: Comparison | None = None
    for step in sorted(set(steps)):
        if step >= 100:
            break
        if step < (current or 0):
            continue
        try:
            if step != current:
                rollout.set_percent(step)
            rollout.wait_for(step, timeout=step_timeout)
        except StepTimeoutError as e:
            rollout.rollback(str(e))
            raise RolloutFailedError(f"rolled back: {e}") from e
        current = step
        # Learned once both sides serve (a canary that never became ready needs no metrics).
        comparison = comparison or _comparison(rollout, config, metrics, interval_s)
        _analyse(rollout, step, interval_s, config, metrics, comparison)
    rollout.promote()
    rollout.wait_for(None, timeout=step_timeout)
    rollout.out(f"{rollout.ref}: promoted {comparison.canary_version if comparison else 'canary'}")


def _comparison(
    rollout: Rollout, config: AnalysisConfig, metrics: MetricSource, interval_s: float
) -> Comparison:
    """What to compare: the versions each side serves, as the pods report them (``versions``).

    Raises:
        RolloutError: the versions cannot be told apart (nothing was changed for it).
    """
    model = config.model or rollout.name
    stable_ref, canary_ref = model_refs(rollout.read())
    unavailable: MetricsUnavailableError | None = None
    for attempt in range(config.max_inconclusive + 1):
        # The pods' reports reach Prometheus a scrape after they start: wait as for any data.
        try:
            served, unavailable = served_versions(metrics, model), None
        except MetricsUnavailableError as e:
            served, unavailable = {}, e
            rollout.out(f"{rollout.ref}: metrics unavailable ({e}); waiting")
        learned = resolve(stable_ref, canary_ref, served)
        stable_version = config.stable_version or learned[0]
        canary_version = config.canary_version or learned[1]
        if stable_version and canary_version:
            break
        if attempt < config.max_inconclusive:
            rollout.sleep(interval_s)
    if unavailable is not None:
        raise RolloutFailedError(
            f"metrics stayed unavailable ({unavailable}); the canary is left where it is. "
            "Rerun `auto` once Prometheus answers."
        )
    if not stable_version or not canary_version:
        raise RolloutError(
            "cannot tell the stable and canary model versions from the predictors' metrics "
            "(predictor_model_info) or their URIs; pin PREDICTOR_MODEL_SHA256 on both, or set "
            "stable_version and canary_version in the analysis file"
        )
    rollout.out(f"{rollout.ref}: comparing {canary_version} (canary) with {stable_version}")
    return Comparison(
        model=model,
        stable_version=stable_version,
        canary_version=canary_version,
        window=config.window or f"{max(int(interval_s), 1)}s",
    )


def _analyse(
    rollout: Rollout,
    step: int,
    interval_s: float,
    config: AnalysisConfig,
    metrics: MetricSource,
    comparison: Comparison,
) -> None:
    """Wait a window, compare, and pass, roll back, or extend (up to ``max_inconclusive``)."""
    for attempt in range(config.max_inconclusive + 1):
        rollout.sleep(interval_s)
        try:
            decision = decide(
                snapshot(
                    metrics,
                    model=comparison.model,
                    version=comparison.stable_version,
                    window=comparison.window,
                ),
                snapshot(
                    metrics,
                    model=comparison.model,
                    version=comparison.canary_version,
                    window=comparison.window,
                ),
                config,
            )
        except MetricsUnavailableError as e:
            rollout.out(f"{rollout.ref}: step {step}%: INCONCLUSIVE: metrics unavailable ({e})")
        else:
            rollout.out(f"{rollout.ref}: step {step}%: {decision.describe()}")
            if decision.verdict == PASS:
                return
            if decision.verdict == FAIL:
                reason = f"analysis failed at {step}%: {'; '.join(decision.reasons)}"
                rollout.rollback(reason)
                raise RolloutFailedError(f"rolled back: {reason}")
        if attempt < config.max_inconclusive:
            rollout.out(f"{rollout.ref}: holding at {step}% and extending the analysis")
    raise RolloutFailedError(
        f"analysis stayed inconclusive at {step}% after {config.max_inconclusive + 1} windows; "
        f"the canary is left at {step}% (no rollback for lack of data). Send traffic and rerun "
        "`auto`, or decide with `promote`/`rollback`."
    )
