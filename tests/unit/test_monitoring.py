"""The monitoring component: rendered with kubectl, schema-checked, and its alerts unit-tested.

The PodMonitor and PrometheusRule are checked against the prometheus-operator models of
``cloudcoil-models-prometheus-operator`` (``tests.k8s_schema``: types, and no unknown field). The rule groups go
through ``promtool check rules`` and ``promtool test rules`` (tests/monitoring/alerts_test.yaml).
The dashboard ConfigMap must hold exactly what the generator builds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from predictor.monitoring.dashboard import dashboard
from tests.k8s_schema import check_object
from tests.unit.test_manifests import render

TESTS = Path(__file__).resolve().parent.parent / "monitoring"
ALERTS = {
    "PredictorHighErrorRatio",
    "PredictorHighLatencyP99",
    "PredictorOverloaded",
    "PredictorModelNotReady",
    "PredictorPredictionDrift",
    "PredictorCanaryHeldTooLong",
    "PredictorFeatureDrift",
    "PredictorPredictionsDriftFromReference",
    "PredictorFeatureMissingJump",
    "PredictorUnseenCategories",
    "PredictorBanditStateDown",
    "PredictorPredictionLogRecordsDropped",
}


def rendered(kind: str) -> dict[str, Any]:
    (found,) = [d for d in render("manifests/overlays/minikube-monitoring") if d["kind"] == kind]
    return found


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed; `make test` installs it (Debian's prometheus)")
    return found


@pytest.mark.parametrize("kind", ["PrometheusRule", "PodMonitor"])
def test_operator_objects_fit_the_prometheus_operator_schema(kind: str) -> None:
    assert check_object(rendered(kind)) == []


def test_the_pod_monitor_scrapes_every_inference_service_pod() -> None:
    spec = rendered("PodMonitor")["spec"]
    assert spec["selector"]["matchExpressions"] == [
        {"key": "serving.kserve.io/inferenceservice", "operator": "Exists"}
    ]
    (endpoint,) = spec["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http1", "/metrics")
    (runtime,) = [
        d for d in render("manifests/overlays/minikube-monitoring") if d["kind"] == "ServingRuntime"
    ]
    ports = runtime["spec"]["containers"][0]["ports"]
    assert any(p["name"] == "http1" and p["containerPort"] == 8080 for p in ports)


def test_the_alerts_pass_promtool_check_and_their_unit_tests(tmp_path: Path) -> None:
    groups = rendered("PrometheusRule")["spec"]["groups"]
    alerts = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    assert alerts == ALERTS
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    shutil.copy(TESTS / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    for command in (["check", "rules", "rules.yaml"], ["test", "rules", "alerts_test.yaml"]):
        done = subprocess.run(
            [promtool(), *command], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
    names = {
        case["alertname"]
        for test in yaml.safe_load((TESTS / "alerts_test.yaml").read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert names == ALERTS  # every alert is shown firing by a test


def test_the_dashboard_config_map_holds_the_generated_dashboard() -> None:
    (config_map,) = [
        d
        for d in render("manifests/overlays/minikube-monitoring")
        if d["kind"] == "ConfigMap"
        and d["metadata"]["name"] == "kserve-sklearn-predictor-dashboard"
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(config_map["data"]["kserve-sklearn-predictor.json"])
    assert shipped == dashboard(), "dashboard.json is stale: run `make dashboard`"
