"""Autoscaling and modelcar manifests, rendered with ``kubectl kustomize`` and checked.

The HPA against the kubernetes SDK's schema classes, KEDA's ScaledObject against the KEDA CRD's
models (``cloudcoil-models-keda``): both aim at the Deployment KServe makes for the predictor in
Standard mode, with KServe's own autoscaler off. Knative's concurrency target and KEDA's
per-pod threshold both come from the knee that ``bench/knee.py`` measured (the figure is in
``bench/RESULTS.md``). The scale-to-zero overlay lets Knative take the last pod away; the
modelcar overlay serves an ``oci://`` image and keeps the digest pin.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from tests.k8s_schema import check_object
from tests.unit.test_manifests import isvc, render

REPO_ROOT = Path(__file__).resolve().parents[2]


def the(path: str, kind: str) -> dict[str, Any]:
    (found,) = [d for d in render(path) if d["kind"] == kind]
    return found


def measured_knee() -> int:
    """The knee of the demo-sized models, as bench/RESULTS.md records it (the lower of the two)."""
    text = (REPO_ROOT / "bench" / "RESULTS.md").read_text()
    knees = [int(k) for k in re.findall(r"^knee: (\d+) in flight", text, re.M)]
    assert knees, "bench/RESULTS.md records no knee (python bench/knee.py)"
    return min(knees[-2:])  # the last run: linear model and forest


def test_the_hpa_scales_the_predictor_deployment_on_cpu() -> None:
    path = "manifests/overlays/gke-hpa"
    hpa, service = the(path, "HorizontalPodAutoscaler"), isvc(path)
    assert check_object(hpa) == [] and check_object(service) == []
    annotations = service["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
    assert annotations["serving.kserve.io/autoscalerClass"] == "external"
    target = hpa["spec"]["scaleTargetRef"]
    assert target == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "name": f"{service['metadata']['name']}-predictor",
    }  # fmt: skip
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    predictor = service["spec"]["predictor"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (
        predictor["minReplicas"],
        predictor["maxReplicas"],
    )


def test_keda_scales_on_requests_in_flight_below_the_measured_knee() -> None:
    path = "manifests/overlays/gke-keda"
    scaled, service = the(path, "ScaledObject"), isvc(path)
    assert check_object(scaled) == []
    assert service["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "external"
    name = service["metadata"]["name"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == f"{name}-predictor"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["query"] == f'sum(predictor_in_flight_requests{{model="{name}"}})'
    knee = measured_knee()
    assert int(trigger["metadata"]["threshold"]) == max(1, round(0.7 * knee))


def test_the_keda_schema_check_catches_a_misspelt_field() -> None:
    scaled = copy.deepcopy(the("manifests/overlays/gke-keda", "ScaledObject"))
    scaled["spec"]["minReplicas"] = 2
    assert check_object(scaled) == [
        "ScaledObject.spec.minReplicas: unknown field for ScaledObjectSpec"
    ]


def test_knative_aims_at_the_measured_knee_and_scale_to_zero_may_take_the_last_pod() -> None:
    predictor = isvc("manifests/overlays/minikube")["spec"]["predictor"]
    assert predictor["scaleMetric"] == "concurrency"
    assert predictor["scaleTarget"] == measured_knee()
    zero = isvc("manifests/overlays/minikube-scale-to-zero")
    assert check_object(zero) == []
    assert zero["spec"]["predictor"]["minReplicas"] == 0
    assert zero["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"


def test_the_modelcar_overlay_serves_an_oci_image_and_keeps_the_pin() -> None:
    service = isvc("manifests/overlays/gke-modelcar")
    model = service["spec"]["predictor"]["model"]
    assert re.fullmatch(
        r"oci://[^:]+/kserve-sklearn-predictor-modelcar:[\w.-]+", model["storageUri"]
    )
    pins = {e["name"]: e["value"] for e in model["env"]}
    gke = isvc("manifests/overlays/gke")["spec"]["predictor"]["model"]
    assert (
        pins["PREDICTOR_MODEL_SHA256"]
        == {e["name"]: e["value"] for e in gke["env"]}["PREDICTOR_MODEL_SHA256"]
    )
