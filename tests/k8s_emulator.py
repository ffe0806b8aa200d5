"""A Kubernetes API emulator for tests (kmock), and a stand-in for KServe's controller.

``Emulator`` runs kmock's ``KubernetesEmulator`` on 127.0.0.1 in a background thread, so the real
(synchronous) ``kubernetes`` client talks to it over HTTP. The subclass adds what the rollout
tooling relies on and kmock 0.8 leaves out: ``resourceVersion`` (bumped on every write, a stale
one in a patch answers 409), ``generation`` (bumped when ``spec`` changes) and ``dryRun=All``
(answered without storing). kmock records every request for assertions.

``FakeKServe`` plays KServe's part: from an InferenceService's spec it writes the status KServe
would (Knative revisions and traffic, or Standard-mode canary statuses). A model URI containing
``broken`` never becomes ready, like a model that fails its acceptance checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import dicts as kmock_dicts
from kmock._internal.k8s import KubernetesError
from kubernetes import client

ISVC = kmock.resource("serving.kserve.io", "v1beta1", "inferenceservices")
CRD = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
EVENTS = kmock.resource("", "v1", "events")


@attrs.define(kw_only=True)
class RollingEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus resourceVersion, generation and dryRun."""

    sent: dict[int, Any] = attrs.field(factory=dict)
    """The bodies of write requests exactly as the client sent them, by request id."""
    faults: list[int] = attrs.field(factory=list)
    """Statuses the next write requests are answered with, one each, before any is applied."""

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        if self.faults and request.action == kmock.action.UPDATE:
            status = self.faults.pop(0)
            raise KubernetesError(status=status, reason="Injected", message="injected by the test")
        if request.resource is not None and request.action == kmock.action.UPDATE and request.name:
            key = (request.resource, request.namespace, request.name)
            if key in self._objects and not self._objects[key].deleted:
                current = self._objects[key].raw
                meta = current.get("metadata", {})
                body = request.data if isinstance(request.data, dict) else {}
                sent = (body.get("metadata") or {}).get("resourceVersion")
                if sent is not None and sent != meta.get("resourceVersion"):
                    raise KubernetesError(
                        status=409,
                        reason="Conflict",
                        message="the object has been modified; please apply your changes to the latest version",
                    )
                if request.params.get("dryRun") == "All":
                    return aiohttp.web.json_response(
                        kmock_dicts.patch_dict(copy.deepcopy(current), body)
                    )
                # kmock stores the patch as sent; keep what the client sent for assertions, then
                # stamp the new resourceVersion (and generation) into the body it will merge.
                self.sent[request.id] = copy.deepcopy(body)
                stamp = body.setdefault("metadata", {})
                stamp["resourceVersion"] = str(int(meta.get("resourceVersion", "0")) + 1)
                if "spec" in body and request.subresource is None:
                    stamp["generation"] = int(meta.get("generation", 1)) + 1
        return await super()._handle(request)


class Emulator:
    """The emulator on a free loopback port, run by its own event loop in a thread."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._main(),), daemon=True
        )
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("the Kubernetes emulator did not start")

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with RollingEmulator() as handler, kmock.Server(handler) as server:
            self.handler = handler
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()

    def api_client(self) -> client.ApiClient:
        configuration = client.Configuration()
        configuration.host = self.url
        return client.ApiClient(configuration)

    def put(
        self, resource: Any, namespace: str | None, name: str, document: dict[str, Any]
    ) -> None:
        """Store an object as the cluster would have it (resourceVersion 1, generation 1)."""
        body = copy.deepcopy(document)
        meta = body.setdefault("metadata", {})
        meta.setdefault("resourceVersion", "1")
        meta.setdefault("generation", 1)
        meta.setdefault("uid", f"uid-{name}")

        async def store() -> None:
            self.handler._objects[resource, namespace, name] = body

        self._run(store())

    def get(self, resource: Any, namespace: str | None, name: str) -> dict[str, Any]:
        async def fetch() -> dict[str, Any]:
            return copy.deepcopy(self.handler._objects[resource, namespace, name].raw)

        return self._run(fetch())  # type: ignore[no-any-return]

    def patch(
        self, resource: Any, namespace: str | None, name: str, change: dict[str, Any]
    ) -> None:
        """Change an object behind the tooling's back (as another writer would), bumping its version."""

        async def apply() -> None:
            stored = self.handler._objects[resource, namespace, name]
            version = int(stored.raw["metadata"]["resourceVersion"]) + 1
            body = copy.deepcopy(change)
            body.setdefault("metadata", {})["resourceVersion"] = str(version)
            stored.patch(body)

        self._run(apply())

    def requests(self, method: str | None = None) -> list[Any]:
        """Requests received so far (optionally only one HTTP method)."""
        found = list(self.handler._requests)
        return [
            r for r in found if method is None or str(r.method).upper().endswith(method.upper())
        ]

    def sent_body(self, request: Any) -> Any:
        """What the client sent in a write request (before the emulator stamped it)."""
        return self.handler.sent.get(request.id, request.data)


def crd(*, with_canary: bool) -> dict[str, Any]:
    """KServe's InferenceService CRD, trimmed to what the tooling reads."""
    spec_properties: dict[str, Any] = {"predictor": {"type": "object"}}
    if with_canary:
        spec_properties["canary"] = {"type": "array", "items": {"type": "object"}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "inferenceservices.serving.kserve.io"},
        "spec": {
            "group": "serving.kserve.io",
            "names": {"kind": "InferenceService", "plural": "inferenceservices"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1beta1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": spec_properties}
                            },
                        }
                    },
                }
            ],
        },
    }


class FakeKServe:
    """Writes the status KServe would write for an InferenceService's current spec."""

    def __init__(self, emulator: Emulator, namespace: str, name: str) -> None:
        self.emulator = emulator
        self.namespace = namespace
        self.name = name
        self.revisions: list[tuple[str, str]] = []  # (revision name, model URI), oldest first
        self.rolled_out: str | None = None

    @contextlib.contextmanager
    def watching(self, every: float = 0.02) -> Iterator[None]:
        """Reconcile in the background, as the controller does, whenever the spec changes."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every):
                isvc = self.emulator.get(ISVC, self.namespace, self.name)
                status = isvc.get("status") or {}
                if status.get("observedGeneration") != isvc["metadata"]["generation"]:
                    self.reconcile()

        thread = threading.Thread(target=loop, name="fake-kserve", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(5)

    def reconcile(self) -> dict[str, Any]:
        isvc = self.emulator.get(ISVC, self.namespace, self.name)
        mode = (isvc["metadata"].get("annotations") or {}).get(
            "serving.kserve.io/deploymentMode", "Standard"
        )
        status = self._knative(isvc) if mode == "Knative" else self._standard(isvc)
        status["observedGeneration"] = isvc["metadata"]["generation"]
        self.emulator.patch(ISVC, self.namespace, self.name, {"status": status})
        return self.emulator.get(ISVC, self.namespace, self.name)

    def _knative(self, isvc: dict[str, Any]) -> dict[str, Any]:
        predictor = isvc["spec"]["predictor"]
        uri = _model_uri(predictor)
        if not self.revisions or self.revisions[-1][1] != uri:
            self.revisions.append((f"{self.name}-predictor-{len(self.revisions) + 1:05d}", uri))
        created = self.revisions[-1][0]
        ready = [name for name, model in self.revisions if "broken" not in model]
        latest_ready = ready[-1] if ready else None
        percent = predictor.get("canaryTrafficPercent")
        if self.rolled_out is None:
            self.rolled_out = latest_ready
        if percent is None and latest_ready == created:
            self.rolled_out = created
            traffic = [
                {"revisionName": created, "percent": 100, "latestRevision": True, "tag": "latest"}
            ]
        elif percent in (None, 0) or latest_ready != created:
            traffic = [
                {
                    "revisionName": self.rolled_out,
                    "percent": 100,
                    "latestRevision": False,
                    "tag": "prev",
                }
            ]
        else:
            traffic = [
                {
                    "revisionName": self.rolled_out,
                    "percent": 100 - percent,
                    "latestRevision": False,
                    "tag": "prev",
                },
                {
                    "revisionName": created,
                    "percent": percent,
                    "latestRevision": True,
                    "tag": "latest",
                },
            ]
        failed = latest_ready != created
        conditions = [
            {"type": "Ready", "status": "True"},
            {
                "type": "PredictorReady",
                "status": "False" if failed else "True",
                **(
                    {"reason": "RevisionFailed", "message": "model failed its acceptance checks"}
                    if failed
                    else {}
                ),
            },
        ]
        return {
            "deploymentMode": "Serverless",
            "url": f"http://{self.name}.{self.namespace}.example.com",
            "conditions": conditions,
            "components": {
                "predictor": {
                    "latestCreatedRevision": created,
                    "latestReadyRevision": latest_ready,
                    "latestRolledoutRevision": self.rolled_out,
                    "traffic": [
                        {**t, "url": f"http://{t['tag']}-{self.name}.example.com"} for t in traffic
                    ],
                }
            },
        }

    def _standard(self, isvc: dict[str, Any]) -> dict[str, Any]:
        canaries = []
        conditions = [{"type": "Ready", "status": "True"}]
        for entry in isvc["spec"].get("canary") or []:
            ready = "broken" not in _model_uri(entry["predictor"])
            canaries.append(
                {
                    "name": entry["predictor"]["name"],
                    "ready": ready,
                    "trafficPercent": entry["trafficPercent"],
                }
            )
            conditions.append(
                {"type": "CanaryPredictorReady", "status": "True" if ready else "False"}
                | (
                    {}
                    if ready
                    else {"reason": "PodsNotReady", "message": "model failed its acceptance checks"}
                )
            )
        return {
            "deploymentMode": "Standard",
            "conditions": conditions,
            "canaryStatuses": canaries or None,
        }


def _model_uri(predictor: dict[str, Any]) -> str:
    """The model a predictor runs, in any of the three styles (as KServe would find it)."""
    storage_uri = (predictor.get("model") or {}).get("storageUri")
    if storage_uri:
        return str(storage_uri)
    for container in predictor.get("containers") or []:
        for variable in container.get("env") or []:
            if variable.get("name") in ("STORAGE_URI", "PREDICTOR_MODEL_URI"):
                return str(variable.get("value"))
    return ""


STYLES = ("storage-uri", "container-storage-uri", "container-predictor-uri")
"""How an InferenceService names its model: model.storageUri, or a container's env."""


def with_style(document: dict[str, Any], style: str) -> dict[str, Any]:
    """``document`` (built in the container-predictor-uri style) in another style."""
    predictor = document["spec"]["predictor"]
    uri = _model_uri(predictor)
    if style == "storage-uri":
        del predictor["containers"]
        predictor["model"] = {
            "modelFormat": {"name": "sklearn"},
            "runtime": "kserve-sklearn-predictor",
            "storageUri": uri,
        }
    elif style == "container-storage-uri":
        env = predictor["containers"][0]["env"]
        env[0] = {"name": "STORAGE_URI", "value": uri}
    return document


def knative_isvc(
    namespace: str = "ml", name: str = "taxi", uri: str = "gs://models/registry/taxi/1.0.0/"
) -> dict[str, Any]:
    """An InferenceService like our minikube overlay renders (Knative mode)."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {"serving.kserve.io/deploymentMode": "Knative"},
        },
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "maxReplicas": 3,
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": "kserve-sklearn-predictor:0.1.0",
                        "args": ["--model_name=taxi"],
                        "env": [
                            {"name": "PREDICTOR_MODEL_URI", "value": uri},
                            {"name": "PREDICTOR_DOWNLOAD_DIR", "value": "/mnt/models"},
                        ],
                    }
                ],
            }
        },
    }


def standard_isvc(
    namespace: str = "ml", name: str = "taxi", uri: str = "gs://models/registry/taxi/1.0.0/"
) -> dict[str, Any]:
    """The same in KServe's Standard mode."""
    document = knative_isvc(namespace, name, uri)
    document["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "Standard"
    document["spec"]["predictor"]["scaleMetric"] = "cpu"
    return document


def write_kubeconfig(emulator: Emulator, path: Path) -> Path:
    """A kubeconfig whose one context talks to ``emulator``; returns ``path``."""
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: emu\n"
        f"clusters: [{{name: emu, cluster: {{server: '{emulator.url}'}}}}]\n"
        "contexts: [{name: emu, context: {cluster: emu, user: emu}}]\n"
        "users: [{name: emu, user: {}}]\n"
    )
    return path
