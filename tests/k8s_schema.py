"""Strict structural check of rendered manifests against the kserve/kubernetes SDK model classes.

Each SDK class lists its fields (``attribute_map``: python name to JSON name) and their types
(``openapi_types``). Walking a rendered object with them catches unknown or misspelt fields and
wrong types, as the API server's schema validation would.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from typing import Any

import kserve.models
import kubernetes.client.models
import pydantic

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
        "Role": "V1Role",
        "RoleBinding": "V1RoleBinding",
        "HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler",
    }
    kind = document.get("kind", "")
    if kind in _CUSTOM:
        return check_model(document, _CUSTOM[kind](), kind)
    if kind not in kinds:
        return [f"{kind}: no SDK class to check it with"]
    return check(document, kinds[kind], kind)


def _spark_application() -> type[pydantic.BaseModel]:
    from kubeflow_spark_api.models import SparkV1beta2SparkApplication  # type: ignore[import-untyped]

    return SparkV1beta2SparkApplication  # type: ignore[no-any-return]


def _scaled_object() -> type[pydantic.BaseModel]:
    from cloudcoil.models.keda.v1alpha1 import ScaledObject

    return ScaledObject


def _prometheus_operator(kind: str) -> type[pydantic.BaseModel]:
    from cloudcoil.models.prometheus_operator import v1

    return getattr(v1, kind)  # type: ignore[no-any-return]


_CUSTOM: dict[str, Callable[[], type[pydantic.BaseModel]]] = {
    "SparkApplication": _spark_application,
    "ScaledObject": _scaled_object,
    "PodMonitor": lambda: _prometheus_operator("PodMonitor"),
    "PrometheusRule": lambda: _prometheus_operator("PrometheusRule"),
}
"""Custom resources with no kubernetes/kserve SDK class: their CRDs' pydantic models."""


def check_model(value: Any, model: type[pydantic.BaseModel], path: str) -> list[str]:
    """Every place where ``value`` does not fit the pydantic ``model`` (generated from a CRD).

    The model's own validation checks the types (these models are strict); walking the
    document against its fields catches unknown or misspelt keys, which the models ignore.
    """
    try:
        model.model_validate(value)
    except pydantic.ValidationError as error:
        return [f"{path}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
    return _unknown_keys(value, model, path)


def _unknown_keys(value: Any, annotation: Any, path: str) -> list[str]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unknown_keys(value, typing.get_args(annotation)[0], path)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unknown_keys(value, inner[0], path) if len(inner) == 1 else []
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(annotation)
        return [e for i, v in enumerate(value) for e in _unknown_keys(v, item, f"{path}[{i}]")]
    if origin is dict and isinstance(value, dict):
        item = typing.get_args(annotation)[1]
        return [e for k, v in value.items() for e in _unknown_keys(v, item, f"{path}.{k}")]
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        if not isinstance(value, dict):
            return []
        fields = {(f.alias or name): f for name, f in annotation.model_fields.items()}
        errors = []
        for key, item in value.items():
            if key not in fields:
                errors.append(f"{path}.{key}: unknown field for {annotation.__name__}")
                continue
            errors.extend(_unknown_keys(item, fields[key].annotation, f"{path}.{key}"))
        return errors
    return []
