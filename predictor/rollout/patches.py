"""The merge patches that start, step, promote and roll back a canary; pure functions.

Each patch carries the ``resourceVersion`` it was decided on, so the API server refuses it (409)
if the InferenceService changed in between, and the audit annotations. Lists (containers, env,
``spec.canary``) are sent whole, because a JSON merge patch replaces lists. In a merge patch
``None`` deletes a field: that is how a Knative canary is promoted.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from predictor.rollout.audit import STABLE_URI
from predictor.rollout.errors import CanaryImpossibleError
from predictor.rollout.status import (
    KNATIVE,
    MODEL_URI_ENV,
    SHA_ENV,
    canary_percent_requested,
    container_env,
    deployment_mode,
)

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


def _with_model(
    predictor: dict[str, Any], model_uri: str, sha256: str | None
) -> list[dict[str, Any]]:
    """The predictor's containers with the model URI (and pinned digest) replaced."""
    containers = copy.deepcopy(predictor.get("containers") or [])
    if not containers:
        raise CanaryImpossibleError(
            "the predictor has no containers; expected our kserve-container"
        )
    index = next((i for i, c in enumerate(containers) if c.get("name") == "kserve-container"), 0)
    env = [
        e
        for e in containers[index].get("env") or []
        if e.get("name") not in (MODEL_URI_ENV, SHA_ENV)
    ]
    pinned = SHA_ENV in container_env(predictor)
    if pinned and sha256 is None:
        raise CanaryImpossibleError(
            f"the stable predictor pins {SHA_ENV}; pass --model-sha256 with the new model's digest"
        )
    env.insert(0, {"name": MODEL_URI_ENV, "value": model_uri})
    if sha256 is not None:
        env.insert(1, {"name": SHA_ENV, "value": sha256})
    containers[index]["env"] = env
    return containers


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
    stable_uri = container_env(predictor).get(MODEL_URI_ENV)
    if stable_uri == model_uri:
        raise CanaryImpossibleError(f"the stable predictor already serves {model_uri}")
    if deployment_mode(isvc) == KNATIVE:
        return {
            "metadata": _meta(isvc, {**annotations, STABLE_URI: stable_uri}),
            "spec": {
                "predictor": {
                    "canaryTrafficPercent": percent,
                    "containers": _with_model(predictor, model_uri, sha256),
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
    canary["containers"] = _with_model(predictor, model_uri, sha256)
    if int(predictor.get("minReplicas") or 0) >= 1:
        canary["minReplicas"] = 1
    else:
        canary.pop("minReplicas", None)
    return {
        "metadata": _meta(isvc, {**annotations, STABLE_URI: stable_uri}),
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
    done: dict[str, str | None] = {**annotations, STABLE_URI: None}
    if deployment_mode(isvc) == KNATIVE:
        return {
            "metadata": _meta(isvc, done),
            "spec": {"predictor": {"canaryTrafficPercent": None}},
        }
    canary = isvc["spec"]["canary"][0]["predictor"]
    return {
        "metadata": _meta(isvc, done),
        "spec": {
            "predictor": {
                "name": canary["name"],
                "containers": copy.deepcopy(canary["containers"]),
            },
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
    return {"metadata": _meta(isvc, {**annotations, STABLE_URI: None}), "spec": {"canary": None}}
