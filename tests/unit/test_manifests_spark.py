"""The SparkApplication component (batch scoring on Spark on Kubernetes), rendered and checked.

Against the Spark operator's CRD models (``kubeflow-spark-api``, strict pydantic models of the
CRD), then what it must hold: the driver file that the spark image holds, arguments that
``score`` accepts, the Spark version of the lock file, the spark image at the service's tag,
no retry of a final failure, a driver account allowed to run executors, and non-root pods.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from predictor.cli.score import build_parser
from tests.k8s_schema import check_object
from tests.unit.test_manifests import render

REPO_ROOT = Path(__file__).resolve().parents[2]
SITE_PACKAGES = "/opt/venv/lib/python3.11/site-packages/"  # the image's venv (Dockerfile)


def spark_application() -> tuple[dict[str, Any], tuple[dict[str, Any], ...]]:
    documents = render("manifests/overlays/gke-batch")
    (application,) = [d for d in documents if d["kind"] == "SparkApplication"]
    return application, documents


def test_the_spark_application_fits_the_operator_schema() -> None:
    application, documents = spark_application()
    assert application["apiVersion"] == "sparkoperator.k8s.io/v1beta2"
    assert check_object(application) == []
    for document in documents:
        if document["kind"] in ("Role", "RoleBinding", "ServiceAccount"):
            assert check_object(document) == [], document["metadata"]["name"]


def test_the_schema_check_catches_a_misspelt_field_and_a_wrong_type() -> None:
    application, _ = spark_application()
    broken = copy.deepcopy(application)
    broken["spec"]["executor"]["instance"] = 4
    assert check_object(broken) == [
        "SparkApplication.spec.executor.instance: unknown field for SparkV1beta2ExecutorSpec"
    ]
    broken = copy.deepcopy(application)
    broken["spec"]["driver"]["cores"] = "1"
    assert check_object(broken) == [
        "SparkApplication.spec.driver.cores: Input should be a valid integer"
    ]


def test_it_runs_the_driver_file_with_arguments_score_accepts() -> None:
    application, _ = spark_application()
    spec = application["spec"]
    assert (spec["type"], spec["mode"]) == ("Python", "cluster")
    main = spec["mainApplicationFile"]
    assert main.startswith("local://" + SITE_PACKAGES)
    assert (REPO_ROOT / main.removeprefix("local://" + SITE_PACKAGES)).is_file()
    assert main.endswith("predictor/cli/spark_submit.py")
    parsed = build_parser().parse_args(["--engine", "spark", *spec["arguments"]])
    assert parsed.input.startswith("gs://") and parsed.output.startswith("gs://")
    assert parsed.max_errors == 100
    env = {e["name"]: e["value"] for e in spec["driver"]["env"]}
    assert env["PREDICTOR_MODEL_URI"].startswith("gs://")
    assert spec["executor"]["env"] == spec["driver"]["env"]


def test_spark_version_and_image_agree_with_the_lock_file_and_the_service() -> None:
    application, documents = spark_application()
    lock = (REPO_ROOT / "requirements.lock").read_text()
    (pinned,) = re.findall(r"^pyspark==(\S+)$", lock, re.M)
    assert application["spec"]["sparkVersion"] == pinned
    (runtime,) = [d for d in documents if d["kind"] == "ServingRuntime"]
    service_image = runtime["spec"]["containers"][0]["image"]
    name, tag = service_image.rsplit(":", 1)
    assert application["spec"]["image"] == f"{name}-spark:{tag}"


def test_a_final_failure_is_not_retried_and_the_pods_run_as_non_root() -> None:
    application, _ = spark_application()
    spec = application["spec"]
    assert spec["restartPolicy"] == {"type": "Never"}
    for role in ("driver", "executor"):
        pod = spec[role]["podSecurityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 1000
        container = spec[role]["securityContext"]
        assert container["allowPrivilegeEscalation"] is False
        assert container["capabilities"]["drop"] == ["ALL"]


def test_the_driver_account_may_create_executor_pods() -> None:
    application, documents = spark_application()
    account = application["spec"]["driver"]["serviceAccount"]
    (binding,) = [d for d in documents if d["kind"] == "RoleBinding"]
    assert {"kind": "ServiceAccount", "name": account} in binding["subjects"]
    (role,) = [
        d
        for d in documents
        if d["kind"] == "Role" and d["metadata"]["name"] == binding["roleRef"]["name"]
    ]
    granted = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    for needed in ("pods", "services", "configmaps"):
        assert {(needed, "create"), (needed, "delete"), (needed, "watch")} <= granted


def test_executors_run_as_the_account_that_reaches_the_bucket() -> None:
    """Each executor reads and writes the bucket itself (one task per input file)."""
    application, documents = spark_application()
    spec = application["spec"]
    assert spec["executor"]["serviceAccount"] == spec["driver"]["serviceAccount"]
    (account,) = [
        d
        for d in documents
        if d["kind"] == "ServiceAccount"
        and d["metadata"]["name"] == spec["executor"]["serviceAccount"]
    ]
    assert "iam.gke.io/gcp-service-account" in account["metadata"]["annotations"]
