"""A thin adapter over the Kubernetes API for InferenceServices and Events.

The official client raises one ``ApiException`` for everything; this module turns it into our
errors (404 to ``IsvcNotFoundError``, 409 to ``ConflictError``, the rest to ``RolloutError``,
keeping the status), raised ``from`` the original. A failure worth another try (429 and 5xx
answers, a connection refused or dropped) is tried again with back-off (0.25 s, doubling up to
4 s) within ``retry_deadline_s``. A patch retried after its connection dropped may have been
applied the first time: it carries the resourceVersion it was planned on, so the retry is a 409
and the controller re-reads and re-decides (``controller.Rollout._change``). Patches are JSON
merge patches, sent with a field manager so ``managedFields`` shows who owns the canary fields.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from predictor.rollout.errors import ConflictError, IsvcNotFoundError, RolloutError

logger = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
CRD_NAME = "inferenceservices.serving.kserve.io"
FIELD_MANAGER = "canary-rollout"
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
"""API answers worth another try: throttled, or the server (or what is before it) failing."""


def api_client(*, kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """A client from a kubeconfig (the default one unless given), else in-cluster config.

    Raises:
        RolloutError: no usable configuration.
    """
    try:
        if kubeconfig is not None or context is not None:
            return config.new_client_from_config(config_file=kubeconfig, context=context)
        try:
            return config.new_client_from_config()
        except ConfigException:
            config.load_incluster_config()
            return client.ApiClient()
    except (ConfigException, OSError) as e:
        raise RolloutError(f"no Kubernetes configuration: {e}") from e


class InferenceServices:
    """Get and patch InferenceServices, read KServe's CRD, record Events."""

    def __init__(self, api: client.ApiClient, *, retry_deadline_s: float = 30.0) -> None:
        self._api = api
        self._deadline_s = retry_deadline_s
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)
        self._crds = client.ApiextensionsV1Api(api)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._api.close()

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        """The InferenceService as a dict."""
        found = self._retrying(
            f"inferenceservice {namespace}/{name}",
            lambda: self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            ),
        )
        return _as_dict(found)

    def patch(
        self, namespace: str, name: str, body: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        """Apply a merge patch; ``dry_run`` asks the server to validate without storing."""
        options: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        result = self._retrying(
            f"inferenceservice {namespace}/{name}",
            lambda: self._custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, body, field_manager=FIELD_MANAGER,
                **options,
            ),
        )  # fmt: skip
        return _as_dict(result)

    def _retrying(self, what: str, call: Callable[[], object]) -> object:
        """``call()``, again after each transient failure until the deadline.

        Raises:
            RolloutError: a final answer (the subclass says which), or still failing at the
                deadline, naming the last failure.
        """
        deadline = time.monotonic() + self._deadline_s
        delay = 0.25
        while True:
            try:
                return call()
            except ApiException as e:
                if e.status not in TRANSIENT_STATUSES:
                    raise _error(e, what) from e
                failure = f"{e.status} {e.reason}"
                cause: Exception = e
            except (urllib3.exceptions.HTTPError, OSError) as e:
                failure, cause = f"connection failed ({type(e).__name__})", e
            if time.monotonic() + delay > deadline:
                raise RolloutError(
                    f"{what}: the Kubernetes API still failing after retrying for "
                    f"{self._deadline_s:.0f}s ({failure}); nothing more was changed: "
                    "`status` shows where the rollout stands, and `auto` resumes from there"
                ) from cause
            logger.warning("%s: %s; retrying in %.2fs", what, failure, delay)
            time.sleep(delay)
            delay = min(delay * 2, 4.0)

    def supports_standard_canary(self) -> bool:
        """Whether the installed KServe CRD has ``spec.canary`` (KServe 0.20+)."""
        crd: Any = self._retrying(
            f"customresourcedefinition {CRD_NAME}",
            lambda: self._crds.read_custom_resource_definition(CRD_NAME),
        )
        for version in crd.spec.versions or []:
            schema = version.schema.open_apiv3_schema if version.schema else None
            if version.name == VERSION and schema is not None:
                spec = (schema.properties or {}).get("spec")
                return bool(spec is not None and "canary" in (spec.properties or {}))
        return False

    def record_event(
        self, isvc: dict[str, Any], *, reason: str, message: str, warning: bool = False
    ) -> None:
        """Create a Kubernetes Event on the InferenceService; a failure is logged, not raised."""
        meta = isvc["metadata"]
        now = datetime.now(UTC)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                generate_name=f"{meta['name']}.", namespace=meta.get("namespace")
            ),
            involved_object=client.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}",
                kind="InferenceService",
                name=meta["name"],
                namespace=meta.get("namespace"),
                uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion"),
            ),
            reason=reason,
            message=message[:1024],
            type="Warning" if warning else "Normal",
            source=client.V1EventSource(component=FIELD_MANAGER),
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        try:
            self._core.create_namespaced_event(meta.get("namespace"), event)
        except ApiException as e:
            logger.warning(
                "could not record event %s on %s: %s", reason, meta["name"], _error(e, "event")
            )


def _as_dict(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RolloutError(f"expected a JSON object from the API, got {type(value).__name__}")
    return value


def _error(e: ApiException, what: str) -> RolloutError:
    message = f"{what}: {e.status} {e.reason}"
    if e.status == 404:
        return IsvcNotFoundError(f"{what} not found")
    if e.status == 409:
        return ConflictError(f"{what} changed since it was read (409 Conflict)")
    return RolloutError(message)
