"""The ``canary`` command line (``scripts/canary.py``): argument parsing and exit codes only.

Exit status: 0 success (including "nothing to do"), 1 rolled back or analysis failed or stayed
inconclusive, 2 usage, configuration or API error.
"""

from __future__ import annotations

import argparse
import getpass
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from predictor.exits import run_command
from predictor.rollout import experiment_cli, gates
from predictor.rollout.analysis import AnalysisConfig, parse_duration
from predictor.rollout.auto import run_auto_on_prometheus
from predictor.rollout.controller import Rollout
from predictor.rollout.errors import RolloutError, StepTimeoutError
from predictor.rollout.registry import resolve_alias, split_alias


def build_parser() -> argparse.ArgumentParser:
    """Subcommands start, status, url, set, promote, resume, rollback, auto, shadow, experiment.

    Every command reaches the cluster (``--namespace``, ``--kubeconfig``, ``--context``); only
    those that change the service take ``--dry-run``, ``--actor`` and ``--timeout``.
    """
    reach = argparse.ArgumentParser(add_help=False)
    reach.add_argument("--namespace", "-n", default="default", help="the service's namespace")
    reach.add_argument(
        "--kubeconfig", help="kubeconfig file (default: ~/.kube/config, else in-cluster)"
    )
    reach.add_argument("--context", help="kubeconfig context")
    change = argparse.ArgumentParser(add_help=False, parents=[reach])
    change.add_argument(
        "--dry-run", action="store_true", help="print the exact patch; send nothing"
    )
    change.add_argument(
        "--actor", default=getpass.getuser(), help="who is acting (recorded on the service)"
    )
    change.add_argument(
        "--timeout", default="10m", help="how long a step may take to show in status"
    )
    name_help = "the InferenceService's name"
    wait_help = (
        "wait until the service's status shows the change, and fail with the controller's "
        "reason when it cannot (default; --no-wait only sends the request)"
    )
    parser = argparse.ArgumentParser(
        prog="canary", description="Canary rollouts for KServe InferenceServices."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", parents=[change], help="point a canary at a new model")
    start.add_argument("name", help=name_help)
    start.add_argument(
        "--model-uri",
        required=True,
        help="the new model: gs://, s3://, models:/NAME/VERSION or models:/NAME@ALIAS",
    )
    start.add_argument(
        "--model-sha256", help="the new model's sha256 (required when the stable pins one)"
    )
    start.add_argument("--model-version", help="the new model's version (default: from its URI)")
    start.add_argument(
        "--percent", type=int, required=True, help="the canary's share of traffic, 0-100"
    )
    start.add_argument(
        "--mirror-to-stable",
        type=float,
        metavar="SHARE",
        help="the canary mirrors this share of its rows (0-1) to the stable model, for the "
        "analysis' max_disagreement",
    )
    start.add_argument(
        "--mirror-url", help="the stable model's v1 predict URL (default: Knative's prev tag)"
    )
    start.add_argument(
        "--wait", action=argparse.BooleanOptionalAction, default=True, help=wait_help
    )
    status = sub.add_parser("status", parents=[reach], help="traffic, readiness and models")
    status.add_argument("name", help=name_help)
    url = sub.add_parser("url", parents=[reach], help="the service's URL and Host, for calls")
    url.add_argument("name", help=name_help)
    set_ = sub.add_parser("set", parents=[change], help="move the canary to a share of traffic")
    set_.add_argument("name", help=name_help)
    set_.add_argument(
        "--percent", type=int, required=True, help="the canary's share of traffic, 0-100"
    )
    set_.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True, help=wait_help)
    for verb, text in (
        ("promote", "give the canary all traffic"),
        ("rollback", "all traffic back to stable"),
    ):
        command = sub.add_parser(verb, parents=[change], help=text)
        command.add_argument("name", help=name_help)
        command.add_argument(
            "--wait", action=argparse.BooleanOptionalAction, default=True, help=wait_help
        )
    auto = sub.add_parser("auto", parents=[change], help="step through percentages with analysis")
    auto.add_argument("name", help=name_help)
    auto.add_argument("--steps", default="10,25,50,100", help="comma-separated percentages")
    auto.add_argument("--interval", default="2m", help="analysis window per step, e.g. 2m")
    auto.add_argument(
        "--analysis", type=Path, required=True, help="YAML: prometheus URL and thresholds"
    )
    auto.add_argument(
        "--webhook",
        action="append",
        default=[],
        metavar="PHASE=URL",
        help="pre-rollout, confirm-promotion, rollback or post-rollout webhook (repeatable)",
    )
    auto.add_argument("--webhook-timeout", default="10s", help="how long a webhook may take")
    auto.add_argument(
        "--pause-before-promote",
        action="store_true",
        help="stop at the last step, awaiting approval: `resume` promotes, `rollback` aborts",
    )
    resume = sub.add_parser("resume", parents=[change], help="promote a canary awaiting approval")
    resume.add_argument("name", help=name_help)
    resume.add_argument(
        "--wait", action=argparse.BooleanOptionalAction, default=True, help=wait_help
    )
    shadow = sub.add_parser("shadow", help="a shadow model beside the stable one")
    verbs = shadow.add_subparsers(dest="shadow_command", required=True)
    shadow_start = verbs.add_parser("start", parents=[change], help="add a shadow model")
    shadow_start.add_argument("name", help=name_help)
    shadow_start.add_argument(
        "--model-uri", required=True, help="the shadow model (the same URIs as --model-uri)"
    )
    shadow_start.add_argument("--model-sha256", help="the shadow model's sha256 pin")
    shadow_status = verbs.add_parser(
        "status", parents=[reach], help="the shadow, and its agreement from Prometheus"
    )
    shadow_status.add_argument("name", help=name_help)
    shadow_status.add_argument("--prometheus", help="Prometheus URL (else: the shadow only)")
    shadow_status.add_argument("--window", default="10m", help="PromQL range, e.g. 10m or 1h")
    shadow_stop = verbs.add_parser("stop", parents=[change], help="remove the shadow")
    shadow_stop.add_argument("name", help=name_help)
    shadow_promote = verbs.add_parser(
        "promote", parents=[change], help="turn the shadow into a canary"
    )
    shadow_promote.add_argument("name", help=name_help)
    shadow_promote.add_argument(
        "--percent", type=int, required=True, help="the canary's share of traffic, 0-100"
    )
    experiment_cli.add_parser(sub, change=change, reach=reach)
    return parser


def run(argv: Sequence[str], *, out: Callable[[str], None] = print) -> int:
    """Run one command; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from predictor.rollout.kube import InferenceServices, api_client

    isvcs = None

    def work() -> None:
        nonlocal isvcs
        if args.command == "experiment" and args.experiment_command == "report":
            experiment_cli.report(args, out)  # Prometheus alone: no cluster needed
            return
        timeout = parse_duration(getattr(args, "timeout", "10m"))
        isvcs = InferenceServices(api_client(kubeconfig=args.kubeconfig, context=args.context))
        rollout = Rollout(
            isvcs,
            args.namespace,
            args.name,
            actor=getattr(args, "actor", ""),  # read-only commands take neither: they change
            dry_run=getattr(args, "dry_run", False),  # nothing
            out=out,
        )
        if args.command == "shadow":
            from predictor.rollout import shadow

            shadow.run_command(args, rollout)
        elif args.command == "experiment":
            experiment_cli.promote(args, rollout)
        elif args.command == "status":
            rollout.out(rollout.status_table())
        elif args.command == "url":
            rollout.out(rollout.address())
        elif args.command == "start":
            model_uri, alias = args.model_uri, None
            if split_alias(model_uri) is not None:
                alias = model_uri
                model_uri, _ = resolve_alias(model_uri)
                rollout.out(f"{alias} is {model_uri}")
            rollout.start(
                model_uri=model_uri,
                alias=alias,
                percent=args.percent,
                sha256=args.model_sha256,
                version=args.model_version,
                mirror_rate=args.mirror_to_stable,
                mirror_url=args.mirror_url,
            )
            settle(rollout, args, args.percent, timeout)
        elif args.command == "set":
            rollout.set_percent(args.percent)
            settle(rollout, args, args.percent, timeout)
        elif args.command == "promote":
            rollout.promote()
            settle(rollout, args, None, timeout)
        elif args.command == "resume":
            gates.resume(rollout)
            settle(rollout, args, None, timeout)
        elif args.command == "rollback":
            rollout.rollback()
            settle(rollout, args, 0, timeout)
        elif args.command == "auto":
            run_auto_on_prometheus(
                rollout,
                steps=parse_steps(args.steps),
                interval_s=parse_duration(args.interval),
                config=AnalysisConfig.load(args.analysis),
                step_timeout=timeout,
                webhooks=args.webhook,
                webhook_timeout_s=parse_duration(args.webhook_timeout),
                pause_before_promote=args.pause_before_promote,
            )

    try:
        return run_command(f"canary {args.command}", work)
    finally:
        if isvcs is not None:
            isvcs.close()


def settle(rollout: Rollout, args: argparse.Namespace, percent: int | None, timeout: float) -> None:
    """Wait until status shows the change just requested, or say that only the request was made.

    Raises:
        StepTimeoutError: the controller says the new revision cannot become Ready, or status
            did not show the change within ``timeout``; the request stays in the spec.
    """
    if args.dry_run:
        return
    if not args.wait:
        rollout.out(
            f"{rollout.ref}: not waited for (--no-wait); "
            f"`canary status {args.name}` shows when the split is taken"
        )
        return
    try:
        rollout.wait_for(percent, timeout=timeout)
    except StepTimeoutError as e:
        undo = "" if percent == 0 else f"; `canary rollback {args.name}` withdraws the request"
        raise StepTimeoutError(f"{e.reason}; the spec still asks for it{undo}") from None


def parse_steps(text: str) -> list[int]:
    """``10,25,50,100`` as percents.

    Raises:
        RolloutError: a step is not a whole number.
    """
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise RolloutError(
            "--steps: expected comma-separated whole percents, e.g. 10,25,50,100"
        ) from None
