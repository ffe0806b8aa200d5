"""A/B experiments: the report from Prometheus, and promoting one arm to be the model.

Queries, texts and patches are pure functions; ``ExperimentRollout`` sends the patch.

The report reads, per arm (the ``version`` label): the rewards received and their sum (the
bandit series, which an experiment exports), the requests and the server's failures, all as
totals since the pods started, and the p99 latency over ``--window``. Arms that share their
state through Redis each export the shared reward totals, so those are read with ``max``
across pods; arms that learn alone, and requests, are summed. (Totals, not ``increase()`` over
a window: Prometheus extrapolates ``increase()`` to the window's edges, which overstates a
young experiment's counts.)

``promote`` replaces the experiment's settings (``PREDICTOR_EXPERIMENT_*`` and the sticky
header) with ``PREDICTOR_MODEL_URI`` (and its pin) of the chosen arm, in one patch, where the
predictor keeps its env: ``model.env`` for a runtime, the container's ``env`` otherwise.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from predictor.rollout.audit import version_from_uri
from predictor.rollout.controller import Rollout
from predictor.rollout.errors import CanaryImpossibleError
from predictor.rollout.model_ref import CONTAINER, MODEL_URI_ENV, SHA_ENV
from predictor.rollout.verdict import ArmSample, Verdict
from predictor.statuses import SERVER_FAILURES

URIS_ENV = "PREDICTOR_EXPERIMENT_MODEL_URIS"
SHAS_ENV = "PREDICTOR_EXPERIMENT_MODEL_SHA256S"
EXPERIMENT_ENV = (URIS_ENV, SHAS_ENV, "PREDICTOR_EXPERIMENT_WEIGHTS", "PREDICTOR_STICKY_HEADER")


def queries(name: str, window: str, *, shared: bool) -> dict[str, str]:
    """PromQL per figure, each by ``version``."""
    model = f'model="{name}"'
    total = "max" if shared else "sum"
    return {
        "feedbacks": f"{total} by (version) (predictor_bandit_feedback_total{{{model}}})",
        "rewards": f"{total} by (version) (predictor_bandit_rewards_total{{{model}}})",
        "share": f"max by (version) (predictor_bandit_selection_probability{{{model}}})",
        "requests": f"sum by (version) (predictor_requests_total{{{model}}})",
        "errors": (
            f'sum by (version) (predictor_requests_total{{{model},status=~"{SERVER_FAILURES}"}})'
        ),
        "p99": (
            "histogram_quantile(0.99, sum by (version, le) (rate("
            f"predictor_request_duration_seconds_bucket{{{model}}}[{window}])))"
        ),
    }


def shared_state_query(name: str) -> str:
    """PromQL: present when the arms share their state through Redis."""
    return f'predictor_bandit_state_up{{model="{name}"}}'


def samples_from(
    figures: dict[str, list[tuple[dict[str, str], float]]], control: str | None = None
) -> list[ArmSample]:
    """One sample per arm, the control first: ``control``, else the arm with the largest share."""
    by_figure = {
        figure: {labels.get("version", "?"): value for labels, value in series}
        for figure, series in figures.items()
    }
    versions = sorted(set(by_figure["feedbacks"]) | set(by_figure["share"]))
    if control is not None and control not in versions:
        raise CanaryImpossibleError("--control: no arm of the experiment has that version")
    shares = by_figure["share"]
    first = control or max(versions, key=lambda v: (shares.get(v, 0.0), -versions.index(v)))
    ordered = [first, *[v for v in versions if v != first]]
    p99s = by_figure["p99"]
    return [
        ArmSample(
            version=v,
            feedbacks=by_figure["feedbacks"].get(v, 0.0),
            rewards=by_figure["rewards"].get(v, 0.0),
            requests=by_figure["requests"].get(v, 0.0),
            errors=by_figure["errors"].get(v, 0.0),
            p99_seconds=p99s[v] if v in p99s and not math.isnan(p99s[v]) else None,
        )
        for v in ordered
    ]


def describe(found: Verdict, name: str, window: str) -> str:
    """The report: one row per arm, then the verdict in one line."""
    header = (
        f"experiment {name}: rewards, requests and failures since the pods started; p99 over "
        f"the last {window}; the control is {found.arms[0].sample.version}"
    )
    rows = [
        "| arm | requests | error ratio | p99 | rewards (n) | mean reward | 95% interval "
        "| P(best) | p-value vs control |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in found.arms:
        s = arm.sample
        ratio = f"{s.errors / s.requests:.4f}" if s.requests else "n/a"
        p99 = f"{s.p99_seconds * 1000:.1f} ms" if s.p99_seconds is not None else "n/a"
        mean = f"{arm.mean:.4f}" if s.feedbacks else "n/a"
        p_value = "control" if arm.p_value is None else f"{arm.p_value:.4g}"
        rows.append(
            f"| {s.version} | {s.requests:.0f} | {ratio} | {p99} | {s.feedbacks:.0f} | {mean} "
            f"| {arm.interval[0]:.4f}..{arm.interval[1]:.4f} | {arm.p_best:.4f} | {p_value} |"
        )
    return "\n".join([header, *rows, found.summary])


@dataclass(frozen=True)
class Arms:
    """An experiment's arms as the predictor is set with them, and where its env lives."""

    uris: tuple[str, ...]
    pins: tuple[str, ...]
    kind: str
    """``model`` (a runtime's) or ``containers``."""
    index: int | None


def arms_of(predictor: dict[str, Any]) -> Arms | None:
    """The experiment the predictor runs; None when it runs none."""
    model = predictor.get("model")
    if model is not None:
        holders: list[tuple[str, int | None, dict[str, Any]]] = [("model", None, model)]
    else:
        containers = predictor.get("containers") or []
        holders = [("containers", i, c) for i, c in enumerate(containers)]
        holders.sort(key=lambda h: h[2].get("name") != CONTAINER)
    for kind, index, holder in holders:
        env = {e.get("name"): str(e.get("value", "")) for e in holder.get("env") or []}
        if env.get(URIS_ENV):
            uris = tuple(u.strip() for u in env[URIS_ENV].split(",") if u.strip())
            pins = tuple(p.strip() for p in env.get(SHAS_ENV, "").split(",") if p.strip())
            return Arms(uris, pins, kind, index)
    return None


def pick(arms: Arms, arm: str) -> int:
    """The index of ``arm``: a version (as the report names it), a URI, or a position from 1.

    Raises:
        CanaryImpossibleError: no arm matches.
    """
    for i, uri in enumerate(arms.uris):
        if arm in (uri, version_from_uri(uri), str(i + 1)):
            return i
    versions = [version_from_uri(u) or u for u in arms.uris]
    raise CanaryImpossibleError(
        f"no arm matches; the arms are {', '.join(versions)} (or their position, from 1)"
    )


def promote_patch(isvc: dict[str, Any], arm: str, annotations: dict[str, str]) -> dict[str, Any]:
    """Serve ``arm`` alone: the experiment's settings replaced by its model, in one patch.

    Raises:
        CanaryImpossibleError: the predictor runs no experiment, or no arm matches.
    """
    predictor = isvc["spec"]["predictor"]
    arms = arms_of(predictor)
    if arms is None:
        raise CanaryImpossibleError(f"the predictor runs no experiment (no {URIS_ENV})")
    chosen = pick(arms, arm)
    fields = copy.deepcopy(predictor[arms.kind])
    holder = fields if arms.index is None else fields[arms.index]
    env = [
        e
        for e in holder.get("env") or []
        if e.get("name") not in (*EXPERIMENT_ENV, MODEL_URI_ENV, SHA_ENV)
    ]
    model = [{"name": MODEL_URI_ENV, "value": arms.uris[chosen]}]
    if arms.pins:
        model.append({"name": SHA_ENV, "value": arms.pins[chosen]})
    holder["env"] = model + env
    return {
        "metadata": {
            "resourceVersion": isvc["metadata"].get("resourceVersion"),
            "annotations": annotations,
        },
        "spec": {"predictor": {arms.kind: fields}},
    }


@dataclass
class ExperimentRollout:
    """The experiment commands that change the service, through a ``Rollout``."""

    rollout: Rollout

    def promote(self, arm: str) -> dict[str, Any]:
        """Make ``arm`` the model."""
        arms = arms_of(self.rollout.read()["spec"]["predictor"])
        uri = arms.uris[pick(arms, arm)] if arms is not None else None
        notes = self.rollout._audit(
            "experiment-promote", f"experiment arm {uri} promoted", None, version_from_uri(uri)
        )
        return self.rollout._change(
            lambda isvc: promote_patch(isvc, arm, notes),
            "ExperimentPromoted",
            f"experiment arm {uri} promoted: it serves alone",
        )
