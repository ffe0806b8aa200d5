"""The automated canary: step the traffic up, judge each step from metrics, promote or roll back.

``run_auto`` drives a ``Rollout`` (which makes each change) through the steps. At each step it
waits for the status to show the split, then compares the canary's metrics with the stable
model's (``analysis.decide``): a pass moves on, a failure rolls back, and an inconclusive
window (too little traffic, or Prometheus down or failing) extends the analysis; when it stays
inconclusive, the canary is left where it is, since no data is no reason to roll back, and
never promoted.

``Gates`` add what Flagger users expect: webhooks before the first step (``pre-rollout``), at
each window (``rollback``), before the promotion (``confirm-promotion``) and after the end
(``post-rollout``), and a pause for a person's approval before the promotion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from predictor.rollout.analysis import (
    FAIL,
    PASS,
    AnalysisConfig,
    Decision,
    MetricSource,
    decide,
    snapshot,
)
from predictor.rollout.controller import Rollout
from predictor.rollout.errors import (
    CanaryImpossibleError,
    MetricsUnavailableError,
    RolloutError,
    RolloutFailedError,
    StepTimeoutError,
)
from predictor.rollout.gates import Gates, pause
from predictor.rollout.status import canary_percent_requested, model_refs
from predictor.rollout.versions import resolve, served_versions
from predictor.rollout.webhooks import parse_webhook, payload


@dataclass(frozen=True)
class Comparison:
    """What each analysis compares: one model's two versions over a window of metrics."""

    model: str
    stable_version: str
    canary_version: str
    window: str


@dataclass
class Progress:
    """Where an ``auto`` run is: what webhooks are told."""

    percent: int | None
    comparison: Comparison | None = None
    last: Decision | None = None

    def body(self, rollout: Rollout, phase: str, **extra: Any) -> dict[str, Any]:
        """The webhooks' payload now."""
        found = self.comparison
        analysis = None
        if self.last is not None:
            analysis = {"verdict": self.last.verdict, "summary": self.last.describe()}
        return {
            **payload(
                name=rollout.name,
                namespace=rollout.namespace,
                phase=phase,
                stable_version=found.stable_version if found else None,
                canary_version=found.canary_version if found else None,
                percent=self.percent,
                analysis=analysis,
            ),
            **extra,
        }


def run_auto(
    rollout: Rollout,
    *,
    steps: Sequence[int],
    interval_s: float,
    config: AnalysisConfig,
    metrics: MetricSource,
    step_timeout: float,
    gates: Gates | None = None,
) -> None:
    """Step the canary through ``steps``, analysing at each; promote at the end or roll back.

    Raises:
        CanaryImpossibleError: no canary takes traffic yet.
        RolloutFailedError: rolled back (analysis failed, a step never showed, or the rollback
            webhook asked), held (a webhook did not approve), or the analysis stayed
            inconclusive (then the canary is left where it is).
    """
    gates = gates or Gates()
    try:
        isvc = rollout.read()
        progress = Progress(canary_percent_requested(isvc))
        if progress.percent in (None, 0):
            raise CanaryImpossibleError(
                f"{rollout.ref} has no canary taking traffic; run `start` first"
            )
        tries = config.max_inconclusive + 1
        gates.hold_until_approved(
            rollout, "pre-rollout", lambda: progress.body(rollout, "pre-rollout"),
            tries=tries, interval_s=interval_s, where=f"at {progress.percent}%",
        )  # fmt: skip
        for step in sorted(set(steps)):
            if step >= 100:
                break
            if step < (progress.percent or 0):
                continue
            try:
                if step != progress.percent:
                    rollout.set_percent(step)
                rollout.wait_for(step, timeout=step_timeout)
            except StepTimeoutError as e:
                _roll_back(rollout, str(e), gates, progress)
            progress.percent = step
            # Learned once both sides serve (a canary that never became ready needs no metrics).
            progress.comparison = progress.comparison or _comparison(
                rollout, config, metrics, interval_s
            )
            _analyse(rollout, step, interval_s, config, metrics, progress, gates)
        gates.hold_until_approved(
            rollout, "confirm-promotion", lambda: progress.body(rollout, "confirm-promotion"),
            tries=tries, interval_s=interval_s, where=f"at {progress.percent}%, not promoted",
        )  # fmt: skip
        canary = progress.comparison.canary_version if progress.comparison else None
        if gates.pause_before_promote:
            pause(rollout, progress.percent or 0, canary)
            return
        rollout.promote()
        rollout.wait_for(None, timeout=step_timeout)
        rollout.out(f"{rollout.ref}: promoted {canary or 'canary'}")
        gates.tell(
            rollout, "post-rollout", progress.body(rollout, "post-rollout", result="promoted")
        )
    finally:
        gates.webhooks.close()


def _roll_back(rollout: Rollout, reason: str, gates: Gates, progress: Progress) -> NoReturn:
    """Roll back, tell the post-rollout webhook, and end the run."""
    rollout.rollback(reason)
    gates.tell(
        rollout, "post-rollout", progress.body(rollout, "post-rollout", result="rolled back")
    )
    raise RolloutFailedError(f"rolled back: {reason}")


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
    progress: Progress,
    gates: Gates,
) -> None:
    """Wait a window, compare, and pass, roll back, or extend (up to ``max_inconclusive``)."""
    comparison = progress.comparison
    assert comparison is not None
    for attempt in range(config.max_inconclusive + 1):
        rollout.sleep(interval_s)
        if gates.webhooks.has("rollback") and gates.rollback_asked(
            rollout, progress.body(rollout, "rollback")
        ):
            _roll_back(rollout, f"the rollback webhook asked for it at {step}%", gates, progress)
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
                    compared_with=comparison.stable_version
                    if config.max_disagreement is not None
                    else None,
                ),
                config,
            )
        except MetricsUnavailableError as e:
            rollout.out(f"{rollout.ref}: step {step}%: INCONCLUSIVE: metrics unavailable ({e})")
        else:
            progress.last = decision
            rollout.out(f"{rollout.ref}: step {step}%: {decision.describe()}")
            if decision.verdict == PASS:
                return
            if decision.verdict == FAIL:
                reason = f"analysis failed at {step}%: {'; '.join(decision.reasons)}"
                _roll_back(rollout, reason, gates, progress)
        if attempt < config.max_inconclusive:
            rollout.out(f"{rollout.ref}: holding at {step}% and extending the analysis")
    raise RolloutFailedError(
        f"analysis stayed inconclusive at {step}% after {config.max_inconclusive + 1} windows; "
        f"the canary is left at {step}% (no rollback for lack of data). Send traffic and rerun "
        "`auto`, or decide with `promote`/`rollback`."
    )


def run_auto_on_prometheus(
    rollout: Rollout,
    *,
    steps: list[int],
    interval_s: float,
    config: AnalysisConfig,
    step_timeout: float,
    webhooks: Sequence[str] = (),
    webhook_timeout_s: float = 10.0,
    pause_before_promote: bool = False,
) -> None:
    """``run_auto`` with the metrics of the Prometheus server ``config`` names.

    ``webhooks``: ``PHASE=URL`` each (``--webhook``).
    """
    from predictor.rollout.prometheus import Prometheus
    from predictor.rollout.webhooks import Webhooks

    hooks = Webhooks([parse_webhook(w) for w in webhooks], timeout_s=webhook_timeout_s)
    prometheus = Prometheus(config.prometheus)
    try:
        run_auto(
            rollout,
            steps=steps,
            interval_s=interval_s,
            config=config,
            metrics=prometheus,
            step_timeout=step_timeout,
            gates=Gates(hooks, pause_before_promote),
        )
    finally:
        prometheus.close()
