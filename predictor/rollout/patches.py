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
) -> dict[str, Any]:
    """One patch that sets the new model and the canary share.

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
    if deployment_mode(isvc) == KNATIVE:
        return {
            "metadata": _meta(isvc, {**annotations, **recorded}),
            "spec": {
                "predictor": {
                    "canaryTrafficPercent": percent,
                    **model_ref.with_model(predictor, model_uri, sha256),
                }
            },
        }
    stable_name = predictor.get("name") or canary_name(isvc["metadata"]["name"], "stable", set())
    canary = {
        k: copy.deepcopy(v)
        for k, v in predictor.items()
        if k not in CANARY_FORBIDDEN and k != "name"
    }
    canary["name"] = canary_name(isvc["metadata"]["name"], version, {stable_name})
    canary.update(model_ref.with_model(predictor, model_uri, sha256))
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
        return {
            "metadata": _meta(isvc, done),
            "spec": {"predictor": {"canaryTrafficPercent": None}},
        }
    canary = isvc["spec"]["canary"][0]["predictor"]
    return {
        "metadata": _meta(isvc, done),
        "spec": {
            "predictor": {"name": canary["name"], **model_ref.served_fields(canary)},
            "canary": None,
        },
    }


def rollback_patch(isvc: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
    """Send all traffic back to the stable model."""
    if deployment_mode(isvc) == KNATIVE:
        return {
            "metadata": _meta(isvc, annotations),
            "spec": {"predictor": {"canaryTrafficPercent": 0}},
        }
    cleared = {**annotations, STABLE_URI: None, STABLE_SHA256: None}
    return {"metadata": _meta(isvc, cleared), "spec": {"canary": None}}
