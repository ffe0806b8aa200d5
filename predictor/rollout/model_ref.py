"""Where a predictor keeps its model, in every InferenceService style; pure functions.

These places are looked at, in this order:

- ``spec.predictor.model.storageUri``: KServe's own way in (a ServingRuntime; KServe's storage
  initializer downloads the URI); the digest pin is ``PREDICTOR_MODEL_SHA256`` in ``model.env``;
- ``PREDICTOR_MODEL_URI`` in ``model.env``: the runtime, with a model the image carries or the
  predictor fetches itself;
- a container's ``STORAGE_URI``: KServe's storage initializer for a custom container;
- a container's ``PREDICTOR_MODEL_URI``: the predictor fetches the model itself.

The same holds for a Standard-mode ``spec.canary[]`` entry, whose ``predictor`` has the shape
of ``spec.predictor``. A new model replaces the reference in place, where it was found.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from predictor.rollout.errors import CanaryImpossibleError

MODEL_URI_ENV = "PREDICTOR_MODEL_URI"
STORAGE_URI_ENV = "STORAGE_URI"
SHA_ENV = "PREDICTOR_MODEL_SHA256"
CONTAINER = "kserve-container"
LOOKED = (
    "spec.predictor.model.storageUri, model.env PREDICTOR_MODEL_URI, "
    "or a container's STORAGE_URI or PREDICTOR_MODEL_URI"
)


@dataclass(frozen=True)
class ModelRef:
    """The model reference of one predictor: where it is, and its value."""

    where: str
    """``model.storageUri``, ``model.env PREDICTOR_MODEL_URI``, ``env STORAGE_URI`` or
    ``env PREDICTOR_MODEL_URI`` (a container's)."""
    uri: str
    sha256: str | None


def find(predictor: dict[str, Any]) -> ModelRef | None:
    """The predictor's model reference; None when it keeps none of the three."""
    model = predictor.get("model") or {}
    if model.get("storageUri"):
        return ModelRef("model.storageUri", str(model["storageUri"]), _env(model).get(SHA_ENV))
    if _env(model).get(MODEL_URI_ENV):
        pins = _env(model)
        return ModelRef(f"model.env {MODEL_URI_ENV}", pins[MODEL_URI_ENV], pins.get(SHA_ENV))
    env = _env(_container(predictor) or {})
    for name in (STORAGE_URI_ENV, MODEL_URI_ENV):
        if env.get(name):
            return ModelRef(f"env {name}", env[name], env.get(SHA_ENV))
    return None


def require(predictor: dict[str, Any]) -> ModelRef:
    """The model reference, or the one-line refusal that says where it was looked for.

    Raises:
        CanaryImpossibleError: the predictor keeps its model in none of the known places.
    """
    found = find(predictor)
    if found is None:
        raise CanaryImpossibleError(f"the predictor names no model; looked in {LOOKED}")
    return found


def with_model(predictor: dict[str, Any], uri: str, sha256: str | None) -> dict[str, Any]:
    """The predictor fields to send so that it serves ``uri``, replaced where it was found.

    Returns ``{"model": ...}`` or ``{"containers": [...]}``, whole (a merge patch replaces
    lists). The digest pin goes beside the reference, and is required when the stable pins one.

    Raises:
        CanaryImpossibleError: no model reference, or a pin is needed and none was given.
    """
    ref = require(predictor)
    if ref.sha256 is not None and sha256 is None:
        raise CanaryImpossibleError(
            f"the stable predictor pins {SHA_ENV}; pass --model-sha256 with the new model's digest"
        )
    if ref.where.startswith("model."):
        model = copy.deepcopy(predictor["model"])
        env = model.get("env") or []
        if ref.where == "model.storageUri":
            model["storageUri"] = uri
        else:
            env = [e for e in env if e.get("name") != MODEL_URI_ENV]
            env.insert(0, {"name": MODEL_URI_ENV, "value": uri})
        model["env"] = _pinned(env, sha256)
        if not model["env"]:
            del model["env"]
        return {"model": model}
    containers = copy.deepcopy(predictor.get("containers") or [])
    index = _container_index(containers)
    name = ref.where.removeprefix("env ")
    env = [e for e in containers[index].get("env") or [] if e.get("name") != name]
    env.insert(0, {"name": name, "value": uri})
    containers[index]["env"] = _pinned(env, sha256)
    return {"containers": containers}


def with_env(
    fields: dict[str, Any], add: dict[str, str], drop: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``fields`` (``{"model": ...}`` or ``{"containers": [...]}``) with env set and removed.

    The model's env, or the model container's, loses ``drop`` and every name of ``add``, then
    gains ``add`` at its end.
    """
    fields = copy.deepcopy(fields)
    if "model" in fields:
        holder = fields["model"]
    else:
        holder = fields["containers"][_container_index(fields["containers"])]
    gone = set(drop) | set(add)
    env = [e for e in holder.get("env") or [] if e.get("name") not in gone]
    env += [{"name": k, "value": v} for k, v in add.items()]
    holder["env"] = env
    return fields


def served_fields(predictor: dict[str, Any]) -> dict[str, Any]:
    """The fields that carry a predictor's model (to copy from a canary when promoting)."""
    return {k: copy.deepcopy(predictor[k]) for k in ("model", "containers") if k in predictor}


def _pinned(env: list[dict[str, Any]], sha256: str | None) -> list[dict[str, Any]]:
    kept = [e for e in env if e.get("name") != SHA_ENV]
    if sha256 is not None:
        kept.insert(1 if kept else 0, {"name": SHA_ENV, "value": sha256})
    return kept


def _container_index(containers: list[dict[str, Any]]) -> int:
    return next((i for i, c in enumerate(containers) if c.get("name") == CONTAINER), 0)


def _container(predictor: dict[str, Any]) -> dict[str, Any] | None:
    containers = predictor.get("containers") or []
    return containers[_container_index(containers)] if containers else None


def _env(holder: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in holder.get("env") or [] if "name" in e}
