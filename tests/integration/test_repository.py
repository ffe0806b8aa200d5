"""Many models in one real predictor process: a repository folder, loaded on demand, in a budget.

Every request goes over 127.0.0.1 to ``python -m predictor --model_repository ...``: v1 and v2
REST with httpx, gRPC with KServe's stub, and the repository extension with Triton's own
clients (HTTP and gRPC). Answers are compared with scikit-learn's for the model each names.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import joblib
import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

from tests.helpers import RunningServer, ServerFactory, infer_request, wait_until

pytestmark = pytest.mark.timeout(300)

PROBE = np.random.default_rng(0).normal(size=(5, 4))


def small_model(seed: int) -> Any:
    """A small classifier of its own: trained on its own data, so answers differ per model."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(80, 4))
    y = (x @ rng.normal(size=4) > 0).astype(int) + 2 * (seed % 3 == 0) * (x[:, 0] > 1)
    estimator = LogisticRegression() if seed % 2 else DecisionTreeClassifier(max_depth=4)
    return estimator.fit(x, y)


def make_repository(root: Path, count: int) -> dict[str, Any]:
    """``count`` models in ``root``, one folder each; returns them by name."""
    models = {}
    for i in range(count):
        name = f"m{i:03d}"
        (root / name).mkdir(parents=True)
        models[name] = small_model(i)
        joblib.dump(models[name], root / name / "model.joblib")
    return models


def v2_body(rows: np.ndarray) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "x",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.ravel().tolist(),
            }
        ]
    }


def metric(server: RunningServer, name: str, labels: str = "") -> float:
    """One sample's value from ``/metrics`` (0 when the series is absent)."""
    return summed(httpx.get(f"{server.url}/metrics", timeout=10).text, name, labels)


def summed(page: str, name: str, labels: str = "") -> float:
    """The sum of the samples of ``name`` on a ``/metrics`` page whose labels hold ``labels``."""
    total = 0.0
    for line in page.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == name or (sample.startswith(name + "{") and labels in sample):
            total += float(value)
    return total


def index(server: RunningServer) -> dict[str, dict[str, str]]:
    response = httpx.post(f"{server.url}/v2/repository/index", timeout=10)
    assert response.status_code == 200, response.text
    return {entry["name"]: entry for entry in response.json()}


@pytest.fixture
def stub_for() -> Any:
    channels: list[grpc.Channel] = []

    def make(server: RunningServer) -> GRPCInferenceServiceStub:
        channel = grpc.insecure_channel(server.grpc_target)
        channels.append(channel)
        return GRPCInferenceServiceStub(channel)

    yield make
    for channel in channels:
        channel.close()


def test_a_hundred_models_in_random_order_answer_as_scikit_learn_within_a_budget(
    server: ServerFactory, tmp_path: Path, stub_for: Any
) -> None:
    models = make_repository(tmp_path / "repo", 120)
    running = server.start(
        None, args=["--model_repository", str(tmp_path / "repo"), "--max_loaded_models", "10"]
    )
    stub = stub_for(running)
    pick = random.Random(7)
    order = [pick.choice(sorted(models)) for _ in range(400)]
    assert len(set(order)) > 100

    client = httpx.Client(base_url=running.url, timeout=60)

    def ask(i_name: tuple[int, str]) -> tuple[str, list[int]]:
        i, name = i_name
        if i % 3 == 0:
            response = stub.ModelInfer(infer_request(name, PROBE), timeout=60)
            return name, list(response.outputs[0].contents.int64_contents)
        if i % 3 == 1:
            answer = client.post(f"/v2/models/{name}/infer", json=v2_body(PROBE))
            assert answer.status_code == 200, answer.text
            return name, answer.json()["outputs"][0]["data"]
        answer = client.post(f"/v1/models/{name}:predict", json={"instances": PROBE.tolist()})
        assert answer.status_code == 200, answer.text
        return name, answer.json()["predictions"]

    with client, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, enumerate(order)))
    for name, labels in answers:
        assert labels == models[name].predict(PROBE).tolist(), name

    listed = index(running)
    assert sorted(listed) == sorted(models)
    ready = [n for n, e in listed.items() if e["state"] == "READY"]
    assert 1 <= len(ready) <= 10
    assert all(listed[n]["version"] for n in ready)
    assert {e["state"] for n, e in listed.items() if n not in ready} == {"UNAVAILABLE"}
    assert {e["reason"] for n, e in listed.items() if n not in ready} == {"not loaded"}
    page = httpx.get(f"{running.url}/metrics", timeout=10).text
    assert summed(page, "predictor_repository_models_loaded") == len(ready)
    # The series of a model not held are gone: the page grows with the budget, not the repository.
    labelled = set(re.findall(r'^predictor_requests_total\{model="([^"]+)"', page, re.M))
    assert labelled and labelled <= set(ready)
    evictions = summed(page, "predictor_repository_evictions_total")
    loads = summed(page, "predictor_repository_loads_total")
    assert evictions >= len(set(order)) - 10
    assert loads == evictions + len(ready)
    assert sorted(httpx.get(f"{running.url}/v1/models", timeout=10).json()["models"]) == sorted(
        ready
    )


def test_concurrent_first_requests_trigger_exactly_one_load(
    server: ServerFactory, tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20000, 4))
    slow_to_load = KNeighborsClassifier().fit(x, (x[:, 0] > 0).astype(int))  # a big pickle
    (tmp_path / "repo" / "knn").mkdir(parents=True)
    joblib.dump(slow_to_load, tmp_path / "repo" / "knn" / "model.joblib")
    running = server.start(None, args=["--model_repository", str(tmp_path / "repo")])
    barrier = threading.Barrier(16)

    def ask(_: int) -> list[int]:
        barrier.wait()
        answer = httpx.post(f"{running.url}/v2/models/knn/infer", json=v2_body(PROBE), timeout=60)
        assert answer.status_code == 200, answer.text
        labels: list[int] = answer.json()["outputs"][0]["data"]
        return labels

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(16)))
    assert all(a == slow_to_load.predict(PROBE).tolist() for a in answers)
    assert metric(running, "predictor_repository_loads_total") == 1
    assert running.log().count("model knn loaded:") == 1


def test_a_broken_model_answers_503_with_its_reason_while_the_others_serve(
    server: ServerFactory, tmp_path: Path, stub_for: Any
) -> None:
    models = make_repository(tmp_path / "repo", 2)
    (tmp_path / "repo" / "broken").mkdir()
    (tmp_path / "repo" / "broken" / "model.joblib").write_bytes(b"not a pickle at all")
    running = server.start(
        None,
        args=[
            "--model_repository",
            str(tmp_path / "repo"),
            "--load_failure_backoff_seconds",
            "600",
        ],
    )
    for _ in range(3):  # the failure is remembered: one load, three answers
        answer = httpx.post(
            f"{running.url}/v2/models/broken/infer", json=v2_body(PROBE), timeout=30
        )
        assert answer.status_code == 503
        assert answer.json()["error"].startswith("model broken failed to load: ")
        assert int(answer.headers["retry-after"]) > 500
    reason = answer.json()["error"].removeprefix("model broken failed to load: ")
    with pytest.raises(grpc.RpcError) as caught:
        stub_for(running).ModelInfer(infer_request("broken", PROBE), timeout=30)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "failed to load" in str(caught.value.details())
    assert metric(running, "predictor_repository_load_failures_total", 'model="broken"') == 1
    for name, model in models.items():
        answer = httpx.post(
            f"{running.url}/v2/models/{name}/infer", json=v2_body(PROBE), timeout=30
        )
        assert answer.json()["outputs"][0]["data"] == model.predict(PROBE).tolist()
    listed = index(running)
    assert listed["broken"]["state"] == "UNAVAILABLE"
    assert listed["broken"]["reason"] == reason
    # An explicit load tries again at once (and fails again, with the same reason).
    again = httpx.post(f"{running.url}/v2/repository/models/broken/load", timeout=30)
    assert again.status_code == 503
    assert metric(running, "predictor_repository_load_failures_total", 'model="broken"') == 2


def test_unknown_models_are_404_and_names_that_are_paths_are_400(
    server: ServerFactory, tmp_path: Path, stub_for: Any
) -> None:
    make_repository(tmp_path / "repo", 1)
    joblib.dump(small_model(5), tmp_path / "outside.joblib")  # beside the repository, not in it
    (tmp_path / "outside").mkdir()
    joblib.dump(small_model(5), tmp_path / "outside" / "model.joblib")
    running = server.start(None, args=["--model_repository", str(tmp_path / "repo")])
    body = b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}'

    def raw(method: str, path: str) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", running.http_port, timeout=10)
        try:  # the path goes on the wire exactly as written (no client normalises it)
            connection.request(
                method, path, body=body, headers={"content-type": "application/json"}
            )
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()

    assert raw("POST", "/v2/models/nope/infer")[0] == 404
    assert raw("POST", "/v2/repository/models/nope/load")[0] == 404
    assert raw("POST", "/v2/repository/models/nope/unload")[0] == 404
    traversals = [
        "..",
        "..%2Foutside",
        "..%2foutside",
        "%2e%2e%2Foutside",
        "..%252Foutside",
        "%252e%252e%252foutside",
        "..%5Coutside",
        "m000%2F..%2F..%2Foutside",
        "Outside",
        ".hidden",
        "a" * 200,
    ]
    for name in traversals:
        for path in (
            f"/v2/models/{name}/infer",
            f"/v1/models/{name}:predict",
            f"/v2/models/{name}",
            f"/v2/repository/models/{name}/load",
            f"/v2/repository/models/{name}/unload",
        ):
            method = "GET" if path == f"/v2/models/{name}" else "POST"
            status, text = raw(method, path)
            assert status == 400, (path, status, text)
            assert "outside" not in text.lower()
    stub = stub_for(running)
    calls: tuple[tuple[Any, Callable[[str], Any]], ...] = (
        (stub.ModelInfer, lambda name: infer_request(name, PROBE)),
        (stub.ModelMetadata, lambda name: pb.ModelMetadataRequest(name=name)),
        (stub.RepositoryModelLoad, lambda name: pb.RepositoryModelLoadRequest(model_name=name)),
        (stub.RepositoryModelUnload, lambda name: pb.RepositoryModelUnloadRequest(model_name=name)),
    )
    for name in ["..", "../outside", "a/b", "..%2Foutside", "%2e%2e", "", "m000/../../outside"]:
        for method, message in calls:
            with pytest.raises(grpc.RpcError) as caught:
                method(message(name), timeout=10)
            assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, name
    assert sorted(index(running)) == ["m000"]
    assert "outside" not in running.log()
    assert metric(running, "predictor_repository_loads_total") == 0


TRITON_GRPC = """
import json, sys
import tritonclient.grpc as triton

client = triton.InferenceServerClient(sys.argv[1])
found = []
for step in sys.argv[2:]:
    what, _, name = step.partition(":")
    if what == "index":
        found.append({m.name: [m.state, m.version, m.reason] for m in client.get_model_repository_index().models})
    elif what == "load":
        found.append(client.load_model(name))
    elif what == "unload":
        found.append(client.unload_model(name))
    elif what == "ready":
        found.append(client.is_model_ready(name))
print(json.dumps(found))
"""


def triton_grpc(server: RunningServer, *steps: str) -> list[Any]:
    """Run ``steps`` with Triton's gRPC client, in a process of its own: its protobuf package
    ("inference") is the one KServe's modules register here."""
    done = subprocess.run(
        [sys.executable, "-c", TRITON_GRPC, server.grpc_target, *steps],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found: list[Any] = json.loads(done.stdout)
    return found


def test_load_and_unload_over_rest_and_grpc_with_the_states_in_the_index(
    server: ServerFactory, tmp_path: Path
) -> None:
    models = make_repository(tmp_path / "repo", 3)
    running = server.start(None, args=["--model_repository", str(tmp_path / "repo")])
    (before,) = triton_grpc(running, "index")
    assert {state for state, _, _ in before.values()} == {"UNAVAILABLE"}
    assert {e["state"] for e in index(running).values()} == {"UNAVAILABLE"}
    loaded = httpx.post(f"{running.url}/v2/repository/models/m000/load", timeout=30)
    assert loaded.json() == {"name": "m000", "load": True}
    _, ready, listed = triton_grpc(running, "load:m001", "ready:m001", "index")
    assert ready is True
    by_rest = index(running)
    for name in ("m000", "m001"):
        assert listed[name][0] == by_rest[name]["state"] == "READY"
        assert listed[name][1] == by_rest[name]["version"] != ""
    assert listed["m002"][:1] == [by_rest["m002"]["state"]] == ["UNAVAILABLE"]
    assert sorted(httpx.get(f"{running.url}/v1/models", timeout=10).json()["models"]) == [
        "m000",
        "m001",
    ]
    unloaded = httpx.post(f"{running.url}/v2/repository/models/m001/unload", timeout=10)
    assert unloaded.json() == {"name": "m001", "unload": True}
    _, after = triton_grpc(running, "unload:m000", "index")
    assert {state for state, _, _ in after.values()} == {"UNAVAILABLE"}
    assert httpx.get(f"{running.url}/v1/models", timeout=10).json()["models"] == []
    assert metric(running, "predictor_repository_models_loaded") == 0
    # Unloading what is not loaded is a 404; the next request loads it again.
    gone = httpx.post(f"{running.url}/v2/repository/models/m000/unload", timeout=10)
    assert gone.status_code == 404
    answer = httpx.post(f"{running.url}/v2/models/m000/infer", json=v2_body(PROBE), timeout=30)
    assert answer.json()["outputs"][0]["data"] == models["m000"].predict(PROBE).tolist()
    assert httpx.get(f"{running.url}/v1/models", timeout=10).json()["models"] == ["m000"]


def test_the_kserve_model_agent_layout_downloads_then_calls_load(
    server: ServerFactory, tmp_path: Path
) -> None:
    mount = tmp_path / "mnt" / "models"
    mount.mkdir(parents=True)
    running = server.start(None, args=["--model_repository", str(mount)])
    # Before the agent has downloaded it, the model is not in the repository.
    assert (
        httpx.post(f"{running.url}/v2/repository/models/tenant-a/load", timeout=10).status_code
        == 404
    )
    # The agent downloads what the TrainedModel's storageUri names into /mnt/models/<name>/ ...
    model = small_model(11)
    staging = tmp_path / "download"
    (staging / "model").mkdir(parents=True)
    joblib.dump(model, staging / "model" / "model.joblib")
    shutil.copytree(staging, mount / "tenant-a")
    # ... then calls the load API, and the model serves.
    loaded = httpx.post(f"{running.url}/v2/repository/models/tenant-a/load", timeout=30)
    assert loaded.status_code == 200 and loaded.json() == {"name": "tenant-a", "load": True}
    ready = httpx.get(f"{running.url}/v2/models/tenant-a/ready", timeout=10)
    assert ready.status_code == 200
    answer = httpx.post(f"{running.url}/v2/models/tenant-a/infer", json=v2_body(PROBE), timeout=30)
    assert answer.json()["outputs"][0]["data"] == model.predict(PROBE).tolist()
    # Deleting the TrainedModel: the agent calls unload, then removes the folder.
    assert (
        httpx.post(f"{running.url}/v2/repository/models/tenant-a/unload", timeout=10).status_code
        == 200
    )
    shutil.rmtree(mount / "tenant-a")
    again = httpx.post(f"{running.url}/v2/models/tenant-a/infer", json=v2_body(PROBE), timeout=30)
    assert again.status_code == 404


def test_preloaded_models_are_ready_before_the_server_is(
    server: ServerFactory, tmp_path: Path
) -> None:
    make_repository(tmp_path / "repo", 4)
    running = server.start(
        None, args=["--model_repository", str(tmp_path / "repo"), "--preload", "m001,m003"]
    )
    listed = index(running)
    assert [n for n, e in listed.items() if e["state"] == "READY"] == ["m001", "m003"]
    (tmp_path / "repo" / "broken").mkdir()
    (tmp_path / "repo" / "broken" / "model.joblib").write_bytes(b"nope")
    refused = server.run_to_exit(
        None, args=["--model_repository", str(tmp_path / "repo"), "--preload", "m000,broken"]
    )
    assert refused.process.returncode == 2
    assert "predictor: cannot serve model" in refused.log()


def test_a_model_with_requests_in_flight_is_never_unloaded_under_them(
    server: ServerFactory, tmp_path: Path, stub_for: Any
) -> None:
    """The slow request goes over gRPC, answered on a thread of its own: REST, on the event
    loop, is free to ask meanwhile."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200000, 4))  # brute force over 200,000 rows: seconds per request
    slow = KNeighborsClassifier(algorithm="brute").fit(x, (x[:, 0] > 0).astype(int))
    (tmp_path / "repo" / "slow").mkdir(parents=True)
    joblib.dump(slow, tmp_path / "repo" / "slow" / "model.joblib")
    fast = small_model(3)
    (tmp_path / "repo" / "fast").mkdir()
    joblib.dump(fast, tmp_path / "repo" / "fast" / "model.joblib")
    running = server.start(
        None, args=["--model_repository", str(tmp_path / "repo"), "--max_loaded_models", "1"]
    )
    many = rng.normal(size=(20000, 4))
    result: dict[str, Any] = {}

    stub = stub_for(running)

    def slow_request() -> None:
        result["slow"] = stub.ModelInfer(infer_request("slow", many), timeout=120)

    worker = threading.Thread(target=slow_request)
    worker.start()
    wait_until(
        lambda: (
            metric(running, "predictor_in_flight_requests", 'model="slow"') == 1
            and index(running)["slow"]["state"] == "READY"
        ),
        timeout=60,
        what="the slow model serving a request",
    )
    # The budget holds one model, and it is in use: the other waits for room, as documented.
    busy = httpx.post(f"{running.url}/v2/models/fast/infer", json=v2_body(PROBE), timeout=30)
    # Unloading it is taken at once (no new request gets it), and stops it once it is idle.
    unloaded = httpx.post(f"{running.url}/v2/repository/models/slow/unload", timeout=30)
    still_serving = metric(running, "predictor_in_flight_requests", 'model="slow"') == 1
    worker.join(timeout=120)
    assert still_serving, "the slow request ended before the other asked; make it slower"
    assert busy.status_code == 503
    assert "every loaded model is serving requests" in busy.json()["error"]
    assert busy.headers["retry-after"] == "1"
    assert unloaded.status_code == 200
    assert list(result["slow"].outputs[0].contents.int64_contents) == slow.predict(many).tolist()
    # Once it is idle, the other takes its place.
    answer = httpx.post(f"{running.url}/v2/models/fast/infer", json=v2_body(PROBE), timeout=30)
    assert answer.json()["outputs"][0]["data"] == fast.predict(PROBE).tolist()
    assert index(running)["slow"]["state"] == "UNAVAILABLE"


def test_the_memory_budget_holds_and_a_model_above_it_is_refused(
    server: ServerFactory, tmp_path: Path
) -> None:
    models = make_repository(tmp_path / "repo", 6)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40000, 4))
    (tmp_path / "repo" / "huge").mkdir()
    joblib.dump(
        KNeighborsClassifier().fit(x, x[:, 0] > 0), tmp_path / "repo" / "huge" / "model.joblib"
    )
    running = server.start(
        None, args=["--model_repository", str(tmp_path / "repo"), "--models_memory_mb", "0.02"]
    )
    for name, model in models.items():
        answer = httpx.post(
            f"{running.url}/v2/models/{name}/infer", json=v2_body(PROBE), timeout=30
        )
        assert answer.json()["outputs"][0]["data"] == model.predict(PROBE).tolist()
        assert metric(running, "predictor_repository_bytes_loaded") <= 0.02 * 2**20
    too_big = httpx.post(f"{running.url}/v2/models/huge/infer", json=v2_body(PROBE), timeout=30)
    assert too_big.status_code == 503
    assert "more than the whole budget" in too_big.json()["error"]
