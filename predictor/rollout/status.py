"""Reading an InferenceService: deployment mode, readiness, traffic, canary state; pure functions.

Everything here takes the InferenceService as the dict the API returns and judges from
``status`` (what KServe did), never from ``spec`` (what was asked), except where the question is
about the spec itself (which model a predictor runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from predictor.rollout import model_ref
from predictor.rollout.audit import (
    AWAITING_APPROVAL,
    PHASE,
    STABLE_SHA256,
    STABLE_URI,
    version_from_uri,
)
from predictor.rollout.errors import CanaryImpossibleError

KNATIVE = "knative"
STANDARD = "standard"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"


@dataclass(frozen=True)
class TrafficTarget:
    """One line of a traffic split: where requests go and which share."""

    name: str
    percent: int
    latest: bool = False
    tag: str | None = None
    url: str | None = None


def deployment_mode(isvc: dict[str, Any]) -> str:
    """``knative`` or ``standard``, from status (what KServe runs) or else the annotation.

    Raises:
        CanaryImpossibleError: a mode with no canary support (e.g. ModelMesh).
    """
    mode = (isvc.get("status") or {}).get("deploymentMode") or (
        (isvc.get("metadata") or {}).get("annotations") or {}
    ).get(MODE_ANNOTATION, "Standard")
    normalized = str(mode).lower()
    if normalized in ("serverless", "knative"):
        return KNATIVE
    if normalized in ("rawdeployment", "standard"):
        return STANDARD
    raise CanaryImpossibleError(f"deployment mode {mode!r} has no canary support")


def condition(isvc: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The status condition of type ``kind``, if any."""
    for entry in (isvc.get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return dict(entry)
    return None


def is_ready(isvc: dict[str, Any]) -> bool:
    """Ready is True and the controller has seen the latest spec."""
    ready = condition(isvc, "Ready")
    return bool(ready and ready.get("status") == "True") and caught_up(isvc)


def caught_up(isvc: dict[str, Any]) -> bool:
    """``status.observedGeneration`` has reached ``metadata.generation``."""
    generation = int((isvc.get("metadata") or {}).get("generation") or 0)
    observed = int((isvc.get("status") or {}).get("observedGeneration") or 0)
    return observed >= generation


def predictor_status(isvc: dict[str, Any]) -> dict[str, Any]:
    """``status.components.predictor`` (empty when absent)."""
    return dict(((isvc.get("status") or {}).get("components") or {}).get("predictor") or {})


def traffic_split(isvc: dict[str, Any]) -> list[TrafficTarget]:
    """Where traffic goes now, judged from status, in either mode."""
    if deployment_mode(isvc) == KNATIVE:
        return [
            TrafficTarget(
                name=str(entry.get("revisionName", "")),
                percent=int(entry.get("percent") or 0),
                latest=bool(entry.get("latestRevision")),
                tag=entry.get("tag"),
                url=entry.get("url"),
            )
            for entry in predictor_status(isvc).get("traffic") or []
        ]
    canaries = [
        TrafficTarget(
            name=str(c.get("name")), percent=int(c.get("trafficPercent") or 0), latest=True
        )
        for c in (isvc.get("status") or {}).get("canaryStatuses") or []
        if c.get("ready")
    ]
    stable_name = str(((isvc.get("spec") or {}).get("predictor") or {}).get("name") or "predictor")
    stable = TrafficTarget(name=stable_name, percent=100 - sum(c.percent for c in canaries))
    return [stable, *canaries]


def canary_percent_requested(isvc: dict[str, Any]) -> int | None:
    """The canary share the spec asks for; None when no canary is configured."""
    spec = isvc.get("spec") or {}
    if deployment_mode(isvc) == KNATIVE:
        value = (spec.get("predictor") or {}).get("canaryTrafficPercent")
        return None if value is None else int(value)
    canaries = spec.get("canary") or []
    return int(canaries[0].get("trafficPercent") or 0) if canaries else None


def split_reached(isvc: dict[str, Any], percent: int | None) -> bool:
    """Whether status shows the canary at ``percent`` (None: fully promoted) and is caught up.

    Knative: ``percent`` on the latest ready revision, the rest on the last rolled-out one; 0
    means all traffic back on a previous revision (judged by traffic, not Ready). Standard: the
    canary's status is ready with that share, or no canary at all for None/0.
    """
    if not caught_up(isvc):
        return False
    split = traffic_split(isvc)
    if deployment_mode(isvc) == KNATIVE:
        state = predictor_status(isvc)
        latest_ready = state.get("latestReadyRevision")
        latest = [t for t in split if t.latest]
        if percent is None:
            return is_ready(isvc) and [(t.name, t.percent) for t in split] == [(latest_ready, 100)]
        if percent == 0:
            return len(split) == 1 and split[0].percent == 100 and not split[0].latest
        return (
            is_ready(isvc)
            and len(latest) == 1
            and latest[0].name == latest_ready == state.get("latestCreatedRevision")
            and latest[0].percent == percent
            and sum(t.percent for t in split) == 100
        )
    canaries = split[1:]
    if percent is None or percent == 0:
        return is_ready(isvc) and not (isvc.get("status") or {}).get("canaryStatuses")
    return is_ready(isvc) and len(canaries) == 1 and canaries[0].percent == percent


def canary_failure(isvc: dict[str, Any]) -> str | None:
    """Why the canary cannot become Ready, when status says so; None while it still may."""
    if deployment_mode(isvc) == KNATIVE:
        state = predictor_status(isvc)
        created, ready = state.get("latestCreatedRevision"), state.get("latestReadyRevision")
        if created is None or created == ready:
            return None
        for kind in (
            "PredictorReady",
            "PredictorConfigurationReady",
            "LatestDeploymentReady",
            "Ready",
        ):
            found = condition(isvc, kind)
            if found and found.get("status") == "False":
                return f"revision {created} is not ready: {_why(found)}"
        return None
    for entry in (isvc.get("status") or {}).get("canaryStatuses") or []:
        found = condition(isvc, "CanaryPredictorReady")
        if not entry.get("ready") and found and found.get("status") == "False":
            return f"canary {entry.get('name')} is not ready: {_why(found)}"
    return None


def _why(found: dict[str, Any]) -> str:
    return f"{found.get('reason', '')} {found.get('message', '')}".strip() or "no reason given"


def model_uris(isvc: dict[str, Any]) -> tuple[str | None, str | None]:
    """The (stable, canary) model URIs from the spec; canary is None when there is none.

    In Knative mode the spec holds the newest model only; the stable one is the URI recorded when
    the canary started (annotation), or the spec's when no canary is in progress.
    """
    spec = isvc.get("spec") or {}
    current = _uri(spec.get("predictor") or {})
    if deployment_mode(isvc) == STANDARD:
        canaries = spec.get("canary") or []
        canary = _uri(canaries[0].get("predictor") or {}) if canaries else None
        return current, canary
    if canary_percent_requested(isvc) is None:
        return current, None
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    return annotations.get(STABLE_URI), current


def model_refs(isvc: dict[str, Any]) -> tuple[model_ref.ModelRef | None, model_ref.ModelRef | None]:
    """The (stable, canary) model references with their digest pins, read as ``model_uris``."""
    spec = isvc.get("spec") or {}
    current = model_ref.find(spec.get("predictor") or {})
    if deployment_mode(isvc) == STANDARD:
        canaries = spec.get("canary") or []
        return current, model_ref.find(canaries[0].get("predictor") or {}) if canaries else None
    if canary_percent_requested(isvc) is None:
        return current, None
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    stable_uri = annotations.get(STABLE_URI)
    stable = (
        model_ref.ModelRef("annotation", stable_uri, annotations.get(STABLE_SHA256))
        if stable_uri
        else None
    )
    return stable, current


def _uri(predictor: dict[str, Any]) -> str | None:
    found = model_ref.find(predictor)
    return found.uri if found is not None else None


def describe(isvc: dict[str, Any], ref: str) -> str:
    """A table of the revisions (or predictors): traffic, latest, model, version and URL."""
    stable_uri, canary_uri = model_uris(isvc)
    rows = [("TARGET", "TRAFFIC", "LATEST", "MODEL", "VERSION", "URL")]
    for target in traffic_split(isvc):
        uri = canary_uri if target.latest and canary_uri else stable_uri
        rows.append(
            (
                target.name,
                f"{target.percent}%",
                "yes" if target.latest else "",
                uri or "?",
                version_from_uri(uri) or "?",
                target.url or "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        f"{ref} ({deployment_mode(isvc)} mode): ready={is_ready(isvc)}, "
        f"canary requested={canary_percent_requested(isvc)}"
    ]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    failure = canary_failure(isvc)
    if failure:
        lines.append(f"canary problem: {failure}")
    annotations = isvc["metadata"].get("annotations") or {}
    if annotations.get(PHASE) == AWAITING_APPROVAL:
        lines.append(
            f"awaiting approval: `canary resume {isvc['metadata']['name']}` promotes, "
            "`canary rollback` aborts"
        )
    return "\n".join(lines)


def split_text(isvc: dict[str, Any]) -> str:
    """The traffic split in one line: ``taxi-predictor-00001 90%, taxi-predictor-00002 10%``."""
    return ", ".join(f"{t.name} {t.percent}%" for t in traffic_split(isvc)) or "no traffic yet"


def service_address(isvc: dict[str, Any], name: str) -> str:
    """The service's URL and Host from its status, and the ``predictor call`` that uses them.

    Raises:
        CanaryImpossibleError: the status has no URL yet (the service is not ready).
    """
    url = str((isvc.get("status") or {}).get("url") or "")
    host = urlparse(url).hostname
    if not host:
        raise CanaryImpossibleError(f"{name} has no status.url yet; is it ready?")
    return (
        f"url:  {url}\n"
        f"host: {host}\n"
        f"call: python -m predictor call http://$INGRESS --host {host} --model {name} "
        "--instances '[[...]]'"
    )
