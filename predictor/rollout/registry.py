"""Resolving an MLflow registry alias before a rollout writes it down: a thin adapter.

``canary start --model-uri models:/taxi@challenger`` must not leave an alias in the
InferenceService: an alias moves, and a pod restarted later would serve another version. The
alias is resolved here, once, to ``models:/taxi/<version>``, and the alias goes in the audit
annotations. The tracking server comes from ``MLFLOW_TRACKING_URI`` and MLflow's auth variables.
"""

from __future__ import annotations

import os

from predictor.rollout.errors import RolloutError


class RegistryError(RolloutError):
    """The MLflow registry could not resolve the alias."""


def split_alias(uri: str) -> tuple[str, str] | None:
    """``(name, alias)`` for ``models:/NAME@ALIAS``; None for any other URI."""
    if not uri.startswith("models:"):
        return None
    rest = uri[len("models:") :].lstrip("/")
    name, at, alias = rest.rpartition("@")
    if not at or not name or not alias:
        return None
    return name, alias


def resolve_alias(uri: str) -> tuple[str, str]:
    """``(concrete URI, version)`` for ``models:/NAME@ALIAS``.

    Raises:
        RegistryError: no tracking server configured, no such model or alias, or it failed.
    """
    parts = split_alias(uri)
    if parts is None:
        raise RegistryError(f"{uri!r} is not models:/NAME@ALIAS")
    name, alias = parts
    where = os.environ.get("MLFLOW_REGISTRY_URI") or os.environ.get("MLFLOW_TRACKING_URI")
    if not where:
        raise RegistryError(f"{uri}: set MLFLOW_TRACKING_URI to resolve the alias")
    try:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
    except ModuleNotFoundError as e:
        raise RegistryError(
            f"{uri}: resolving an alias needs MLflow: "
            "pip install 'kserve-sklearn-predictor[mlflow]'"
        ) from e
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    try:
        found = MlflowClient(tracking_uri=where, registry_uri=where).get_model_version_by_alias(
            name, alias
        )
    except MlflowException as e:
        raise RegistryError(
            f"{uri}: the registry at {where} did not resolve it ({e.error_code})"
        ) from e
    return f"models:/{name}/{found.version}", str(found.version)
