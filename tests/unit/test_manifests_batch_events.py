"""The batch-scoring and event-driven manifests, rendered with ``kubectl kustomize`` and checked.

Jobs and CronJobs against the kubernetes SDK's schema classes; the Knative Trigger (no SDK class
here) against the fields of eventing.knative.dev/v1; then what each must hold: the service's
image, the `score` command with its model, non-root and read-only, final exit codes not retried,
the shard index from the downward API, and the Trigger and logger aimed at the service.
"""

from __future__ import annotations

from typing import Any

from tests.k8s_schema import check_object
from tests.unit.test_manifests import isvc, render

TRIGGER_SPEC = {"broker", "filter", "filters", "subscriber", "delivery"}
SUBSCRIBER = {"ref", "uri", "CACerts", "audience"}
REF = {"apiVersion", "kind", "name", "namespace"}


def pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    job = document["spec"]["jobTemplate"] if document["kind"] == "CronJob" else document
    return job["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def job_spec(document: dict[str, Any]) -> dict[str, Any]:
    job = document["spec"]["jobTemplate"] if document["kind"] == "CronJob" else document
    return job["spec"]  # type: ignore[no-any-return]


def test_batch_overlay_renders_jobs_that_fit_the_schema_and_run_score_in_the_service_image() -> (
    None
):
    documents = render("manifests/overlays/gke-batch")
    jobs = [d for d in documents if d["kind"] in ("Job", "CronJob")]
    (runtime,) = [d for d in documents if d["kind"] == "ServingRuntime"]
    image = runtime["spec"]["containers"][0]["image"]
    assert sorted(d["metadata"]["name"] for d in jobs) == [
        "taxi-score",
        "taxi-score-nightly",
        "taxi-score-sharded",
    ]
    for document in jobs:
        assert check_object(document) == []
        spec = pod_spec(document)
        (container,) = spec["containers"]
        assert container["image"] == image
        assert container["args"][0] == "score"
        assert any(a.startswith("--input=gs://") for a in container["args"])
        assert any(a.startswith("--output=gs://") for a in container["args"])
        values = {e["name"]: e.get("value", "") for e in container["env"]}
        assert values["PREDICTOR_MODEL_URI"].startswith("gs://")
        assert spec["restartPolicy"] == "Never"
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["limits"]["memory"]
        rules = job_spec(document)["podFailurePolicy"]["rules"]
        assert rules[0]["onExitCodes"] == {
            "containerName": "score",
            "operator": "In",
            "values": [1, 2],
        }


def test_the_indexed_job_passes_its_index_as_the_shard() -> None:
    (sharded,) = [
        d
        for d in render("manifests/overlays/gke-batch")
        if d["metadata"]["name"].endswith("sharded")
    ]
    spec = sharded["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 4
    (container,) = spec["template"]["spec"]["containers"]
    assert f"--shard=$(SHARD_INDEX)/{spec['completions']}" in container["args"]
    (index,) = [e for e in container["env"] if e["name"] == "SHARD_INDEX"]
    assert index["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    names = [e["name"] for e in container["env"]]
    assert names.index("SHARD_INDEX") == 0  # $(VAR) expands only variables defined before use


def test_the_cronjob_runs_one_at_a_time() -> None:
    (nightly,) = [d for d in render("manifests/overlays/gke-batch") if d["kind"] == "CronJob"]
    assert nightly["spec"]["concurrencyPolicy"] == "Forbid"
    assert nightly["spec"]["schedule"] == "0 2 * * *"


def test_the_trigger_delivers_events_to_the_service_predict_route() -> None:
    documents = render("manifests/overlays/minikube-events")
    (trigger,) = [d for d in documents if d["kind"] == "Trigger"]
    service = isvc("manifests/overlays/minikube-events")
    assert trigger["apiVersion"] == "eventing.knative.dev/v1"
    spec = trigger["spec"]
    assert set(spec) <= TRIGGER_SPEC
    assert set(spec["subscriber"]) <= SUBSCRIBER
    assert set(spec["subscriber"]["ref"]) <= REF
    assert spec["filter"]["attributes"]["type"]
    ref = spec["subscriber"]["ref"]
    assert (ref["apiVersion"], ref["kind"], ref["name"]) == (
        service["apiVersion"],
        "InferenceService",
        service["metadata"]["name"],
    )
    (runtime,) = [d for d in documents if d["kind"] == "ServingRuntime"]
    assert "--model_name={{.Name}}" in runtime["spec"]["containers"][0]["args"]
    model_name = service["metadata"]["name"]  # KServe fills {{.Name}} with the service's name
    assert spec["subscriber"]["uri"] == f"/v1/models/{model_name}:predict"


def test_the_inference_logger_is_set_on_the_predictor_and_fits_the_schema() -> None:
    service = isvc("manifests/overlays/minikube-events")
    assert check_object(service) == []
    logger = service["spec"]["predictor"]["logger"]
    assert logger["mode"] == "all"
    assert logger["url"].startswith("http://")


def test_the_shadow_overlay_adds_a_shadow_beside_the_served_model() -> None:
    service = isvc("manifests/overlays/minikube-shadow")
    assert check_object(service) == []
    values = {e["name"]: e["value"] for e in service["spec"]["predictor"]["model"]["env"]}
    assert values["PREDICTOR_MODEL_URI"] == "file:///opt/model/taxi/1.0.0/"
    assert values["PREDICTOR_SHADOW_MODEL_URI"] == "file:///opt/model/taxi/1.1.0/"
    assert values["PREDICTOR_PREDICTION_LOG"].startswith("/tmp/")  # the writable volume


def test_the_bandit_overlay_serves_both_versions_as_arms() -> None:
    service = isvc("manifests/overlays/minikube-bandit")
    assert check_object(service) == []
    values = {e["name"]: e["value"] for e in service["spec"]["predictor"]["model"]["env"]}
    assert "PREDICTOR_MODEL_URI" not in values
    assert values["PREDICTOR_BANDIT_MODEL_URIS"].split(",") == [
        "file:///opt/model/taxi/1.0.0/",
        "file:///opt/model/taxi/1.1.0/",
    ]
    assert values["PREDICTOR_BANDIT_POLICY"] == "thompson"
