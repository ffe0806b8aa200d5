"""MLflow's model registry (``models:/NAME/VERSION``, ``models:/NAME@ALIAS``): a thin adapter.

The tracking server comes from ``MLFLOW_TRACKING_URI`` (or ``MLFLOW_REGISTRY_URI``) and MLflow's
own auth variables (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``, ``MLFLOW_TRACKING_TOKEN``). An alias
is resolved once, here, to a concrete version; that version and its run id are what the server
reports. MLflow's own HTTP retries are turned down (unless the environment sets them) so that a
server that is down is retried within the same deadline as the other stores. Every failure
becomes one ``StorageError`` naming the URI.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from predictor.errors import (
    StorageAuthError,
    StorageError,
    StorageNotFoundError,
    VersionExistsError,
)
from predictor.stores.retrying import Transient, within_deadline
from predictor.stores.uris import ModelURI

logger = logging.getLogger(__name__)

T = TypeVar("T")

PUBLISH_EXPERIMENT = "predictor-publish"
"""The experiment whose runs hold the bundles ``publish --to models:/NAME`` registers."""


class MLflowRegistry:
    """Resolve, download and register model versions, failures classified."""

    def __init__(self, *, deadline_s: float) -> None:
        self._deadline_s = deadline_s
        self._where = os.environ.get("MLFLOW_REGISTRY_URI") or os.environ.get("MLFLOW_TRACKING_URI")
        # Read once at start-up: MLflow reads these per request.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(min(60.0, deadline_s))))
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    def _client(self, uri: ModelURI) -> Any:
        if not self._where:
            raise StorageError(
                f"{uri.raw}: set MLFLOW_TRACKING_URI to the MLflow server that holds the registry"
            )
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self._where, registry_uri=self._where)

    def resolve(self, uri: ModelURI) -> dict[str, str]:
        """The concrete version ``uri`` names: model name, version, alias (if any), run id."""
        client = self._client(uri)
        model = self._call(uri, lambda: client.get_registered_model(uri.path), "model")
        version = uri.version
        if uri.alias is not None:
            version = dict(model.aliases or {}).get(uri.alias)
            if version is None:
                known = ", ".join(sorted(model.aliases or {})) or "none"
                raise StorageNotFoundError(
                    f"{uri.raw}: model '{uri.path}' has no alias '{uri.alias}' (aliases: {known})"
                )
        found = self._call(uri, lambda: client.get_model_version(uri.path, version), "version")
        resolved = {"registry_model": uri.path, "registry_version": str(found.version)}
        if uri.alias is not None:
            resolved["registry_alias"] = uri.alias
            logger.info("%s resolved to version %s", uri.raw, found.version)
        if found.run_id:
            resolved["mlflow_run_id"] = str(found.run_id)
        return resolved

    def download(self, uri: ModelURI, dest: Path) -> dict[str, str]:
        """Resolve ``uri`` and download that version's files into ``dest``; returns its lineage."""
        resolved = self.resolve(uri)
        concrete = f"models:/{uri.path}/{resolved['registry_version']}"

        def download() -> None:
            import mlflow.artifacts

            mlflow.artifacts.download_artifacts(
                artifact_uri=concrete, dst_path=str(dest), tracking_uri=self._where
            )

        self._call(uri, download, "version")
        return resolved

    def register(self, uri: ModelURI, folder: Path, tags: dict[str, str]) -> str:
        """Log ``folder`` as a run's artifacts and register it as a new version; returns it.

        The same ``bundle_version`` tag cannot be registered twice under one model name.
        """
        from mlflow.exceptions import MlflowException

        client = self._client(uri)
        bundle_version = tags.get("bundle_version", "")
        try:
            self._call(uri, lambda: client.create_registered_model(uri.path), "model")
        except StorageError as e:
            if not isinstance(e.__cause__, MlflowException) or (
                e.__cause__.error_code != "RESOURCE_ALREADY_EXISTS"
            ):
                raise
        existing = self._call(
            uri,
            lambda: client.search_model_versions(
                f"name='{_quoted(uri.path)}' and tags.bundle_version='{_quoted(bundle_version)}'"
            ),
            "model",
        )
        if existing:
            raise VersionExistsError(
                f"{uri.raw}: bundle version {bundle_version} is already registered as version "
                f"{existing[0].version}; versions are immutable, publish a new version"
            )
        experiment = self._call(
            uri, lambda: client.get_experiment_by_name(PUBLISH_EXPERIMENT), "model"
        )
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self._call(uri, lambda: client.create_experiment(PUBLISH_EXPERIMENT), "model")
        )
        run = self._call(uri, lambda: client.create_run(experiment_id, tags=tags), "model")
        run_id = run.info.run_id
        self._call(uri, lambda: client.log_artifacts(run_id, str(folder), "bundle"), "model")
        with contextlib.redirect_stdout(sys.stderr):  # MLflow prints run links; stdout is ours
            self._call(uri, lambda: client.set_terminated(run_id), "model")
        created = self._call(
            uri,
            lambda: client.create_model_version(
                uri.path, f"{run.info.artifact_uri}/bundle", run_id=run_id, tags=tags
            ),
            "model",
        )
        return str(created.version)

    def _call(self, uri: ModelURI, work: Callable[[], T], subject: str) -> T:
        """Run ``work``; retry a server that is down or failing until the deadline; classify."""
        return within_deadline(
            lambda: self._classified(uri, work, subject),
            deadline_s=self._deadline_s,
            uri=uri.raw,
            store="MLflow",
        )

    def _classified(self, uri: ModelURI, work: Callable[[], T], subject: str) -> T:
        from mlflow.exceptions import MlflowException

        try:
            return work()
        except MlflowException as e:
            status = int(e.get_http_status_code())  # type: ignore[no-untyped-call]
            if status == 404:
                raise StorageNotFoundError(self._not_found(uri, subject)) from e
            if status in (401, 403):
                raise StorageAuthError(
                    f"{uri.raw}: the MLflow server refused access ({status}); set "
                    "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
                    "MLFLOW_TRACKING_TOKEN) for a user with READ on the model"
                ) from e
            if status < 500:
                raise StorageError(f"{uri.raw}: MLflow refused the request ({e.error_code})") from e
            raise Transient() from e
        except OSError as e:
            raise Transient() from e

    def _not_found(self, uri: ModelURI, subject: str) -> str:
        if subject == "model":
            return f"{uri.raw}: no registered model '{uri.path}' at {self._where}"
        return f"{uri.raw}: model '{uri.path}' has no version {uri.version or '(from alias)'}"


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
