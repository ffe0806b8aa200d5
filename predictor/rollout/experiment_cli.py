"""``canary experiment report|promote``: an A/B experiment's verdict, and its winner alone."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from predictor.rollout.controller import Rollout
from predictor.rollout.experiment import (
    ExperimentRollout,
    describe,
    queries,
    samples_from,
    shared_state_query,
)
from predictor.rollout.verdict import verdict


def add_parser(
    sub: Any, *, change: argparse.ArgumentParser, reach: argparse.ArgumentParser
) -> None:
    """The ``experiment`` subcommands, on the ``canary`` parser's subparsers."""
    experiment = sub.add_parser("experiment", help="an A/B experiment's verdict, and its winner")
    verbs = experiment.add_subparsers(dest="experiment_command", required=True)
    report = verbs.add_parser(
        "report", help="per arm: sample, mean reward and interval, P(best), p-value"
    )
    report.add_argument("name", help="the model's name (the InferenceService's)")
    report.add_argument("--prometheus", required=True, help="Prometheus URL")
    report.add_argument("--window", default="1h", help="PromQL range for the p99 latency, e.g. 1h")
    report.add_argument(
        "--control", help="the control arm's version (default: the arm with the largest share)"
    )
    report.add_argument(
        "--min-feedback", type=int, default=100, help="rewards each arm needs before a call"
    )
    report.add_argument(
        "--confidence", type=float, default=0.95, help="P(best) and 1 - p-value needed to call"
    )
    promote = verbs.add_parser("promote", parents=[change], help="serve one arm alone")
    promote.add_argument("name", help="the InferenceService's name")
    promote.add_argument("arm", help="the arm: its version, its URI, or its position from 1")
    del reach  # every experiment command that reaches the cluster changes it


def report(args: argparse.Namespace, out: Callable[[str], None]) -> None:
    """Read the arms' figures from Prometheus and print the verdict.

    Raises:
        MetricsUnavailableError: Prometheus did not answer.
        CanaryImpossibleError: the experiment has fewer than two arms in the metrics, or
            ``--control`` names none of them.
    """
    from predictor.rollout.errors import CanaryImpossibleError
    from predictor.rollout.prometheus import Prometheus

    prometheus = Prometheus(args.prometheus)
    try:
        shared = bool(prometheus.query(shared_state_query(args.name)))
        figures = {
            figure: prometheus.query(promql)
            for figure, promql in queries(args.name, args.window, shared=shared).items()
        }
    finally:
        prometheus.close()
    samples = samples_from(figures, args.control)
    if len(samples) < 2:
        raise CanaryImpossibleError(
            "Prometheus has fewer than two arms for this model; is it an experiment, scraped?"
        )
    found = verdict(samples, min_feedback=args.min_feedback, confidence=args.confidence)
    out(describe(found, args.name, args.window))


def promote(args: argparse.Namespace, rollout: Rollout) -> None:
    """``experiment promote NAME ARM``."""
    ExperimentRollout(rollout).promote(args.arm)
