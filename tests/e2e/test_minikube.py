"""End to end on minikube with KServe (Knative mode): deploy, call, canary, promote, roll back.

Skipped unless ``--with-e2e`` (``make e2e``). Needs: a minikube context with KServe and Knative
installed, and the demo image loaded (``make docker-demo``). Each test run uses its own namespace.
Traffic goes through ``kubectl port-forward`` on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.helpers import REPO_ROOT, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


def kubectl(*args: str, namespace: str | None = None, check: bool = True) -> str:
    command = ["kubectl", *(["--namespace", namespace] if namespace else []), *args]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed: {result.stderr}")
    return result.stdout


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"predictor-e2e-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


def isvc(namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        kubectl("get", "inferenceservice", "taxi", "-o", "json", namespace=namespace)
    )
    return found


def wait_for(namespace: str, predicate: Any, what: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document = isvc(namespace)
        if predicate(document):
            return document
        time.sleep(5)
    raise AssertionError(
        f"timed out waiting for {what}: {json.dumps(document.get('status'), indent=1)}"
    )


def ready(document: dict[str, Any]) -> bool:
    status = document.get("status", {})
    conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
    return (
        conditions.get("Ready") == "True"
        and status.get("observedGeneration", 0) >= document["metadata"]["generation"]
    )


def traffic(document: dict[str, Any]) -> list[tuple[str, int]]:
    entries = (
        document.get("status", {}).get("components", {}).get("predictor", {}).get("traffic", [])
    )
    return sorted((e.get("revisionName", ""), int(e.get("percent", 0))) for e in entries)


@contextmanager
def forwarded(namespace: str, revision: str) -> Iterator[str]:
    pod = kubectl(
        "get",
        "pods",
        "-l",
        f"serving.knative.dev/revision={revision}",
        "-o",
        "jsonpath={.items[0].metadata.name}",
        namespace=namespace,
    ).strip()
    port = free_port()
    process = subprocess.Popen(
        [
            "kubectl",
            "--namespace",
            namespace,
            "port-forward",
            "--address",
            "127.0.0.1",
            f"pod/{pod}",
            f"{port}:8080",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/v2/health/live", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def version_of(url: str) -> str:
    response = httpx.post(
        f"{url}/v1/models/taxi:predict", json={"instances": [[1, 2, 3]]}, timeout=10
    )
    assert response.status_code == 200, response.text
    return str(response.json()["model_version"])


def test_deploy_call_canary_promote_and_roll_back(namespace: str) -> None:
    kubectl("apply", "-k", "manifests/overlays/minikube", namespace=namespace)
    first = wait_for(namespace, ready, "the stable model to become Ready")
    stable_revision = first["status"]["components"]["predictor"]["latestReadyRevision"]
    with forwarded(namespace, stable_revision) as url:
        assert version_of(url) == "1.0.0"
        v2 = httpx.post(
            f"{url}/v2/models/taxi/infer",
            json={
                "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]
            },
            timeout=10,
        )
        assert v2.status_code == 200
        assert v2.json()["model_version"] == "1.0.0"

    kubectl("apply", "-k", "manifests/overlays/minikube-canary", namespace=namespace)
    canary = wait_for(namespace, lambda d: ready(d) and len(traffic(d)) == 2, "a 90/10 split")
    assert sorted(p for _, p in traffic(canary)) == [10, 90]
    canary_revision = canary["status"]["components"]["predictor"]["latestReadyRevision"]
    with forwarded(namespace, canary_revision) as url:
        assert version_of(url) == "1.1.0"

    kubectl("patch", "inferenceservice", "taxi", "--type", "merge", "-p",
            '{"spec":{"predictor":{"canaryTrafficPercent":0}}}', namespace=namespace)  # fmt: skip
    rolled_back = wait_for(
        namespace, lambda d: traffic(d) == [(stable_revision, 100)], "traffic back on 1.0.0"
    )
    assert traffic(rolled_back) == [(stable_revision, 100)]

    kubectl("patch", "inferenceservice", "taxi", "--type", "merge", "-p",
            '{"spec":{"predictor":{"canaryTrafficPercent":null}}}', namespace=namespace)  # fmt: skip
    promoted = wait_for(
        namespace, lambda d: ready(d) and traffic(d) == [(canary_revision, 100)], "promotion"
    )
    assert (
        promoted["status"]["components"]["predictor"]["latestRolledoutRevision"] == canary_revision
    )
