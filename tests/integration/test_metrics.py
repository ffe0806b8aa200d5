"""``/metrics`` on a real server process: per-version request counts, latency, predictions.

Covers: requests by model, version, protocol and status (REST v1, v2 and gRPC, successes and
caller errors, unknown models folded into one label), the prediction distribution (per class and
top probability), batch rows, ``model_info`` and load time; and correct totals with two uvicorn
workers, whichever worker answered.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import httpx
import joblib
import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from prometheus_client.parser import text_string_to_metric_families
from sklearn.ensemble import RandomForestClassifier

from predictor.stores.files import sha256_file
from tests.helpers import RunningServer, ServerFactory, infer_request

ROWS = [[1.0, 200.0, 2.0], [17.0, 18.0, 1.0], [40.0, 250.0, 6.0]]


def scrape(server: RunningServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"{server.url}/metrics").text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= set(found))


@pytest.fixture
def demo(server: ServerFactory, demo_model_dir: Path) -> RunningServer:
    return server.start(str(demo_model_dir), name="taxi")


def test_requests_and_predictions_are_counted_per_version(
    demo: RunningServer, demo_model_dir: Path
) -> None:
    version = httpx.get(f"{demo.url}/v2/models/taxi").json()["versions"][0]
    for _ in range(3):
        assert (
            httpx.post(f"{demo.url}/v1/models/taxi:predict", json={"instances": ROWS}).status_code
            == 200
        )
    assert (
        httpx.post(f"{demo.url}/v1/models/taxi:predict", json={"instances": [[1]]}).status_code
        == 400
    )
    assert (
        httpx.post(f"{demo.url}/v1/models/nope:predict", json={"instances": ROWS}).status_code
        == 404
    )
    v2 = httpx.post(
        f"{demo.url}/v2/models/taxi/infer",
        json={
            "inputs": [{"name": "x", "shape": [3, 3], "datatype": "FP64", "data": ROWS}],
            "outputs": [{"name": "predict_proba"}],
        },
    )
    assert v2.status_code == 200
    with grpc.insecure_channel(demo.grpc_target) as channel:
        stub = GRPCInferenceServiceStub(channel)
        tensor = pb.ModelInferRequest.InferInputTensor(
            name="x",
            datatype="FP64",
            shape=[1, 3],
            contents=pb.InferTensorContents(fp64_contents=ROWS[0]),
        )
        stub.ModelInfer(pb.ModelInferRequest(model_name="taxi", inputs=[tensor]))
        with pytest.raises(grpc.RpcError):
            bad = pb.ModelInferRequest.InferInputTensor(
                name="x",
                datatype="FP64",
                shape=[1, 2],
                contents=pb.InferTensorContents(fp64_contents=[1, 2]),
            )
            stub.ModelInfer(pb.ModelInferRequest(model_name="taxi", inputs=[bad]))

    samples = scrape(demo)
    requests = "predictor_requests_total"
    assert value(samples, requests, model="taxi", version=version, protocol="v1", status="200") == 3
    assert value(samples, requests, model="taxi", version=version, protocol="v1", status="400") == 1
    assert (
        value(samples, requests, model="unknown", version="unknown", protocol="v1", status="404")
        == 1
    )
    assert value(samples, requests, model="taxi", version=version, protocol="v2", status="200") == 1
    assert (
        value(samples, requests, model="taxi", version=version, protocol="grpc", status="OK") == 1
    )
    assert (
        value(
            samples,
            requests,
            model="taxi",
            version=version,
            protocol="grpc",
            status="INVALID_ARGUMENT",
        )
        == 1
    )
    assert (
        value(
            samples,
            "predictor_request_duration_seconds_count",
            model="taxi",
            version=version,
            protocol="v1",
        )
        == 4
    )
    # 3 v1 calls x 3 rows + 3 v2 rows + 1 gRPC row were predicted.
    assert total(samples, "predictor_predictions_total", model="taxi", version=version) == 13
    assert (
        value(samples, "predictor_prediction_top_probability_count", model="taxi", version=version)
        == 3
    )
    assert value(samples, "predictor_batch_rows_count", model="taxi", version=version) == 5
    assert value(samples, "predictor_batch_rows_sum", model="taxi", version=version) == 13
    assert value(samples, "predictor_in_flight_requests", model="taxi") == 0
    info = [
        labels for (name, labels), v in samples.items() if name == "predictor_model_info" and v == 1
    ]
    assert len(info) == 1
    info_labels = dict(info[0])
    assert info_labels["version"] == version
    assert info_labels["sha256"] == sha256_file(demo_model_dir / "model.joblib")
    assert value(samples, "predictor_model_load_seconds", model="taxi", version=version) > 0
    # KServe's own histograms are still there.
    assert any(name.startswith("request_predict_seconds") for name, _ in samples)


def test_totals_are_right_with_two_workers(server: ServerFactory, demo_model_dir: Path) -> None:
    running = server.start(str(demo_model_dir), name="taxi", args=["--workers", "2"], timeout=60)
    version = httpx.get(f"{running.url}/v2/models/taxi").json()["versions"][0]
    for _ in range(20):
        # a fresh connection each time, so both workers get requests
        assert (
            httpx.post(
                f"{running.url}/v1/models/taxi:predict", json={"instances": ROWS[:1]}
            ).status_code
            == 200
        )
    for _ in range(3):  # whichever worker answers the scrape, the totals are the same
        samples = scrape(running)
        assert (
            value(
                samples,
                "predictor_requests_total",
                model="taxi",
                version=version,
                protocol="v1",
                status="200",
            )
            == 20
        )
        assert total(samples, "predictor_predictions_total", model="taxi", version=version) == 20


def test_with_two_workers_the_main_process_metrics_are_shown_too(
    server: ServerFactory, demo_model_dir: Path
) -> None:
    # The main process loads the model and answers gRPC; REST workers answer /metrics.
    running = server.start(str(demo_model_dir), name="taxi", args=["--workers", "2"], timeout=60)
    version = httpx.get(f"{running.url}/v2/models/taxi").json()["versions"][0]
    with grpc.insecure_channel(running.grpc_target) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)  # may listen after REST is ready
        stub = GRPCInferenceServiceStub(channel)
        for _ in range(4):
            stub.ModelInfer(infer_request("taxi", ROWS[:1]))
    samples = scrape(running)
    assert (
        value(
            samples,
            "predictor_requests_total",
            model="taxi",
            version=version,
            protocol="grpc",
            status="OK",
        )
        == 4
    )
    assert total(samples, "predictor_model_info", model="taxi", version=version) == 1
    assert total(samples, "predictor_model_load_seconds", model="taxi", version=version) > 0


def forest_server(server: ServerFactory, tmp_path: Path) -> tuple[RunningServer, Any, Any]:
    """A 100-tree forest served through scikit-learn (slow enough for requests to queue)."""
    x = np.random.default_rng(0).normal(size=(500, 20))
    forest = RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0).fit(
        x, x[:, 0] > 0
    )
    joblib.dump(forest, tmp_path / "forest.joblib")
    running = server.start(
        str(tmp_path / "forest.joblib"),
        name="rf",
        args=["--fast_path", "false", "--cache_size", "8"],
    )
    return running, x, forest


def test_concurrent_requests_are_batched_and_cache_hits_are_counted(
    server: ServerFactory, tmp_path: Path
) -> None:
    running, x, _ = forest_server(server, tmp_path)
    assert (
        "fast path switched off"
        in httpx.get(f"{running.url}/v2/models/rf").json()["parameters"]["engine"]
    )

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            replies = await asyncio.gather(
                *(
                    client.post("/v1/models/rf:predict", json={"instances": [x[i].tolist()]})
                    for i in range(64)
                )
            )
        return [r.status_code for r in replies]

    assert asyncio.run(burst()) == [200] * 64
    samples = scrape(running)
    version = httpx.get(f"{running.url}/v2/models/rf").json()["versions"][0]
    calls = value(samples, "predictor_batch_rows_count", model="rf", version=version)
    rows = value(samples, "predictor_batch_rows_sum", model="rf", version=version)
    assert rows == 64
    assert calls < 64  # some requests shared a model call
    for _ in range(3):
        httpx.post(f"{running.url}/v1/models/rf:predict", json={"instances": [x[0].tolist()]})
    samples = scrape(running)
    assert (
        value(samples, "predictor_cache_lookups_total", model="rf", version=version, result="hit")
        >= 2
    )


def test_concurrent_grpc_requests_are_batched_and_each_gets_its_own_answer(
    server: ServerFactory, tmp_path: Path
) -> None:
    running, x, forest = forest_server(server, tmp_path)

    async def burst() -> list[pb.ModelInferResponse]:
        async with grpc.aio.insecure_channel(running.grpc_target) as channel:
            stub = GRPCInferenceServiceStub(channel)
            calls = (
                stub.ModelInfer(
                    infer_request(
                        "rf", x[i : i + 1], outputs=("predict", "predict_proba"), id=str(i)
                    )
                )
                for i in range(64)
            )
            return list(await asyncio.gather(*calls))

    replies = asyncio.run(burst())
    labels, proba = forest.predict(x[:64]), forest.predict_proba(x[:64])
    for row, reply in enumerate(replies):
        assert reply.id == str(row)
        outputs = {output.name: output.contents for output in reply.outputs}
        assert list(outputs["predict_proba"].fp64_contents) == proba[row].tolist()
        assert list(outputs["predict"].bool_contents) == [labels[row]]
    samples = scrape(running)
    version = httpx.get(f"{running.url}/v2/models/rf").json()["versions"][0]
    assert value(samples, "predictor_batch_rows_sum", model="rf", version=version) == 64
    assert value(samples, "predictor_batch_rows_count", model="rf", version=version) < 64


def test_no_access_log_line_per_request_unless_asked(
    server: ServerFactory, demo_model_dir: Path
) -> None:
    quiet = server.start(str(demo_model_dir), name="taxi")
    chatty = server.start(str(demo_model_dir), name="taxi", args=["--access_log", "true"])
    for running in (quiet, chatty):
        for _ in range(3):
            httpx.post(f"{running.url}/v1/models/taxi:predict", json={"instances": ROWS})
    assert "POST /v1/models/taxi" not in quiet.log()
    assert quiet.log().count("uvicorn.access") == 0
    assert chatty.log().count("POST /v1/models/taxi%3Apredict") == 3
