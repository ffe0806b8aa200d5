"""The merge patches that start, step, promote and roll back a canary; pure functions.

Each patch carries the ``resourceVersion`` it was decided on, so the API server refuses it (409)
if the InferenceService changed in between, and the audit annotations. Lists (containers, env,
``spec.canary``) are sent whole, because a JSON merge patch replaces lists. The model is
replaced where the InferenceService keeps it (``model_ref``). In a merge patch
``None`` deletes a field: that is how a Knative canary is promoted.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from predictor.rollout import model_ref
from predictor.rollout.audit import STABLE_SHA256, STABLE_URI
from predictor.rollout.errors import CanaryImpossibleError
from predictor.rollout.status import KNATIVE, canary_percent_requested, deployment_mode

MIRROR_URL_ENV = "PREDICTOR_SHADOW_URL"
MIRROR_RATE_ENV = "PREDICTOR_SHADOW_SAMPLE_RATE"
MIRROR_ENV = (MIRROR_URL_ENV, MIRROR_RATE_ENV)
"""A canary mirrored to the stable model: the shadow machinery in reverse, on the canary."""

CANARY_FORBIDDEN = (
    "maxReplicas",
    "scaleTarget",
    "scaleMetric",
    "scaleMetricType",
    "autoScaling",
    "workerSpec",
)
"""Fields KServe refuses on a Standard-mode canary predictor."""


def _meta(isvc: dict[str, Any], annotations: Mapping[str, str | None]) -> dict[str, Any]:
    return {
        "resourceVersion": isvc["metadata"].get("resourceVersion"),
        "annotations": dict(annotations),
    }


def canary_name(isvc_name: str, version: str | None, taken: set[str]) -> str:
    """A DNS-safe predictor name for a Standard-mode canary, unique among ``taken``."""
    base = f"{isvc_name}-{re.sub(r'[^a-z0-9]+', '-', (version or 'canary').lower()).strip('-')}"[
        :50
    ]
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def start_patch(
    isvc: dict[str, Any],
    *,
    model_uri: str,
    sha256: str | None,
    percent: int,
    version: str | None,
    annotations: dict[str, str],
    mirror: tuple[str, float] | None = None,
) -> dict[str, Any]:
    """One patch that sets the new model and the canary share.

    ``mirror``: (the stable model's v1 predict URL, the share of rows): the canary mirrors that
    share of its rows to the stable model, and exports their agreement (``max_disagreement``).

    Raises:
        CanaryImpossibleError: a canary is already in progress, or the spec cannot take one.
    """
    if canary_percent_requested(isvc) not in (None, 0):
        raise CanaryImpossibleError(
            "a canary is already in progress; promote or roll it back first"
        )
    predictor = isvc["spec"]["predictor"]
    stable = model_ref.require(predictor)
    stable_uri = stable.uri
    recorded = {STABLE_URI: stable_uri, STABLE_SHA256: stable.sha256}
    if stable_uri == model_uri:
        raise CanaryImpossibleError(f"the stable predictor already serves {model_uri}")
    served = model_ref.with_model(predictor, model_uri, sha256)
    if mirror is not None:
        served = model_ref.with_env(
            served, {MIRROR_URL_ENV: mirror[0], MIRROR_RATE_ENV: f"{mirror[1]:g}"}
        )
    if deployment_mode(isvc) == KNATIVE:
        return {
            "metadata": _meta(isvc, {**annotations, **recorded}),
            "spec": {"predictor": {"canaryTrafficPercent": percent, **served}},
        }
    stable_name = predictor.get("name") or canary_name(isvc["metadata"]["name"], "stable", set())
    canary = {
        k: copy.deepcopy(v)
        for k, v in predictor.items()
        if k not in CANARY_FORBIDDEN and k != "name"
    }
    canary["name"] = canary_name(isvc["metadata"]["name"], version, {stable_name})
    canary.update(served)
    if "model" in canary:
        # KServe's CRD requires a name on a canary's model, as on a container.
        canary["model"].setdefault("name", model_ref.CONTAINER)
    if int(predictor.get("minReplicas") or 0) >= 1:
        canary["minReplicas"] = 1
    else:
        canary.pop("minReplicas", None)
    return {
        "metadata": _meta(isvc, {**annotations, **recorded}),
        "spec": {
            "predictor": {"name": stable_name},
            "canary": [{"predictor": canary, "trafficPercent": percent}],
        },
    }


def percent_patch(
    isvc: dict[str, Any], percent: int, annotations: dict[str, str]
) -> dict[str, Any]:
    """Move the canary to ``percent`` of traffic (0 keeps it deployed but dark)."""
    if deployment_mode(isvc) == KNATIVE:
        return {
            "metadata": _meta(isvc, annotations),
            "spec": {"predictor": {"canaryTrafficPercent": percent}},
        }
    canaries = copy.deepcopy(isvc["spec"].get("canary") or [])
    canaries[0]["trafficPercent"] = percent
    return {"metadata": _meta(isvc, annotations), "spec": {"canary": canaries}}


def promote_patch(isvc: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
    """Send all traffic to the canary and make it the stable predictor."""
    done: dict[str, str | None] = {**annotations, STABLE_URI: None, STABLE_SHA256: None}
    if deployment_mode(isvc) == KNATIVE:
        predictor = isvc["spec"]["predictor"]
        unmirrored = {}
        if _mirrored(model_ref.served_fields(predictor)):
            # The promoted revision stops mirroring: one more revision, of the same model.
            unmirrored = model_ref.with_env(model_ref.served_fields(predictor), {}, MIRROR_ENV)
        return {
            "metadata": _meta(isvc, done),
            "spec": {"predictor": {"canaryTrafficPercent": None, **unmirrored}},
        }
    canary = isvc["spec"]["canary"][0]["predictor"]
    served = model_ref.served_fields(canary)
    if _mirrored(served):
        served = model_ref.with_env(served, {}, MIRROR_ENV)
    return {
        "metadata": _meta(isvc, done),
        "spec": {"predictor": {"name": canary["name"], **served}, "canary": None},
    }


def _mirrored(fields: dict[str, Any]) -> bool:
    holders = [fields["model"]] if "model" in fields else fields.get("containers") or []
    return any(e.get("name") == MIRROR_URL_ENV for h in holders for e in h.get("env") or [])


def stable_predict_url(isvc: dict[str, Any]) -> str:
    """The stable model's v1 predict URL inside the cluster, for a canary to mirror to.

    Knative mode with tag routing (our manifests turn it on): the ``prev`` tag's route, which
    serves the last rolled-out revision while a canary runs. The model is named after the
    InferenceService (the runtime's ``--model_name={{.Name}}``).

    Raises:
        CanaryImpossibleError: Standard mode, where no URL is derived: give ``--mirror-url``.
    """
    meta = isvc["metadata"]
    name, namespace = meta["name"], meta.get("namespace", "default")
    if deployment_mode(isvc) != KNATIVE:
        raise CanaryImpossibleError(
            "--mirror-to-stable in Standard mode needs --mirror-url: the stable predictor's "
            "v1 predict URL inside the cluster"
        )
    return f"http://prev-{name}-predictor.{namespace}.svc.cluster.local/v1/models/{name}:predict"


def rollback_patch(isvc: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
    """Send all traffic back to the stable model."""
    if deployment_mode(isvc) == KNATIVE:
        return {
            "metadata": _meta(isvc, annotations),
            "spec": {"predictor": {"canaryTrafficPercent": 0}},
        }
    cleared = {**annotations, STABLE_URI: None, STABLE_SHA256: None}
    return {"metadata": _meta(isvc, cleared), "spec": {"canary": None}}
