"""Strict structural check of rendered manifests against the kserve/kubernetes SDK model classes.

Each SDK class lists its fields (``attribute_map``: python name to JSON name) and their types
(``openapi_types``). Walking a rendered object with them catches unknown or misspelt fields and
wrong types, as the API server's schema validation would.
"""

from __future__ import annotations

import re
from typing import Any

import kserve.models
import kubernetes.client.models

_LIST = re.compile(r"^(?:list|List)\[(.+)\]$")
_DICT = re.compile(r"^(?:dict\(([^,]+), (.+)\)|Dict\[([^,]+), (.+)\])$")


def _model_class(name: str) -> Any:
    for module in (kserve.models, kubernetes.client.models):
        if hasattr(module, name):
            return getattr(module, name)
    raise KeyError(f"no SDK model class {name}")


def check(value: Any, type_name: str, path: str = "") -> list[str]:
    """Every place where ``value`` does not fit ``type_name``; empty when it fits."""
    if value is None:
        return []
    if type_name == "object":
        return []
    if type_name == "str":
        return [] if isinstance(value, str) else [f"{path}: expected a string, got {value!r}"]
    if type_name == "bool":
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean, got {value!r}"]
    if type_name == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected an integer, got {value!r}"]
    if type_name == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected a number, got {value!r}"]
    if type_name == "ResourceQuantity":  # "256Mi", or a plain number
        ok = isinstance(value, str | int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected a quantity, got {value!r}"]
    if type_name in ("datetime", "bytes"):
        return [] if isinstance(value, str) else [f"{path}: expected a timestamp, got {value!r}"]
    if match := _LIST.match(type_name):
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        return [
            e for i, item in enumerate(value) for e in check(item, match.group(1), f"{path}[{i}]")
        ]
    if match := _DICT.match(type_name):
        if not isinstance(value, dict):
            return [f"{path}: expected a map, got {type(value).__name__}"]
        inner = match.group(2) or match.group(4)
        return [e for k, item in value.items() for e in check(item, inner, f"{path}.{k}")]
    cls = _model_class(type_name)
    if not isinstance(value, dict):
        return [f"{path}: expected an object ({type_name}), got {type(value).__name__}"]
    json_to_attr = {json_name: attr for attr, json_name in cls.attribute_map.items()}
    errors = []
    for key, item in value.items():
        if key not in json_to_attr:
            errors.append(f"{path}.{key}: unknown field for {type_name}")
            continue
        errors.extend(check(item, cls.openapi_types[json_to_attr[key]], f"{path}.{key}"))
    return errors


def check_object(document: dict[str, Any]) -> list[str]:
    """Check one rendered Kubernetes object by its kind."""
    kinds = {
        "InferenceService": "V1beta1InferenceService",
        "ServiceAccount": "V1ServiceAccount",
        "ServingRuntime": "V1alpha1ServingRuntime",
        "ClusterServingRuntime": "V1alpha1ClusterServingRuntime",
        "TrainedModel": "V1alpha1TrainedModel",
        "Job": "V1Job",
        "CronJob": "V1CronJob",
    }
    kind = document.get("kind", "")
    if kind not in kinds:
        return [f"{kind}: no SDK class to check it with"]
    return check(document, kinds[kind], kind)
