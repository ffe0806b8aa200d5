"""The predictor as a real process (``python -m predictor``) on free loopback ports.

Covers: start-up from a flag, from the environment and from gs:// (emulator); v1 and v2 over
HTTP and v2 over gRPC with real clients, answers equal to scikit-learn's on the same artifact;
gRPC status codes for bad input and unknown models; 413 from real uvicorn; ``--workers 2``;
and refused start-ups (bad scheme, missing object, wrong digest) that exit 2 with one line.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from predictor.demo import FEATURES
from predictor.stores.files import sha256_file
from tests.gcs import GCSBucket
from tests.helpers import RunningServer, ServerFactory, wait_until

ROWS = [[1.0, 200.0, 2.0], [17.0, 18.0, 1.0], [40.0, 250.0, 6.0]]


@pytest.fixture
def demo(server: ServerFactory, demo_model_dir: Path) -> RunningServer:
    return server.start(str(demo_model_dir), name="taxi")


@pytest.fixture
def stub(demo: RunningServer) -> Iterator[GRPCInferenceServiceStub]:
    with grpc.insecure_channel(demo.grpc_target) as channel:
        yield GRPCInferenceServiceStub(channel)


def expected(demo_model_dir: Path) -> tuple[list[str], np.ndarray]:
    estimator = joblib.load(demo_model_dir / "model.joblib")
    frame = pd.DataFrame(ROWS, columns=list(FEATURES))
    return estimator.predict(frame).tolist(), estimator.predict_proba(frame)


def test_v1_and_v2_rest_answer_like_sklearn(demo: RunningServer, demo_model_dir: Path) -> None:
    labels, proba = expected(demo_model_dir)
    v1 = httpx.post(
        f"{demo.url}/v1/models/taxi:predict",
        json={"instances": ROWS, "parameters": {"outputs": ["predict", "predict_proba"]}},
    )
    assert v1.status_code == 200
    assert v1.json()["predictions"] == labels
    # the demo (gradient boosting) goes native once converted: float32 sums, within 1e-6
    np.testing.assert_allclose(v1.json()["predict_proba"], proba, atol=1e-6)
    v2 = httpx.post(
        f"{demo.url}/v2/models/taxi/infer",
        content=json.dumps(
            {"inputs": [{"name": "x", "shape": [3, 3], "datatype": "FP64", "data": ROWS}]}
        ),
    )
    assert v2.status_code == 200
    assert v2.json()["outputs"][0]["data"] == labels
    assert v2.json()["model_version"] == v1.json()["model_version"] == v2.headers["x-model-version"]
    assert httpx.get(f"{demo.url}/v1/models/taxi").json() == {"name": "taxi", "ready": True}
    assert httpx.get(f"{demo.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{demo.url}/v2/models/taxi/ready").json() == {"name": "taxi", "ready": True}


TRITON_CLIENT = """
import json, sys
import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

client = triton.InferenceServerClient(sys.argv[1])
rows = np.asarray(json.loads(sys.argv[2]), dtype=np.float64)
found = {"live": client.is_server_live(), "ready": client.is_model_ready("taxi")}
metadata = client.get_model_metadata("taxi")
found["metadata"] = [metadata.name, list(metadata.versions), [o.name for o in metadata.outputs]]
tensor = triton.InferInput("trips", list(rows.shape), "FP64")
tensor.set_data_from_numpy(rows)
wanted = [triton.InferRequestedOutput("predict"), triton.InferRequestedOutput("predict_proba")]
result = client.infer("taxi", [tensor], outputs=wanted, request_id="triton-1")
found["predict"] = [label.decode() for label in result.as_numpy("predict")]
found["predict_proba"] = result.as_numpy("predict_proba").tolist()
found["response"] = [result.get_response().id, result.get_response().model_version]
bad = triton.InferInput("trips", [3, 2], "FP64")
bad.set_data_from_numpy(rows[:, :2].copy())
try:
    client.infer("taxi", [bad])
except InferenceServerException as e:
    found["refused"] = [e.status(), e.message()]
print(json.dumps(found))
"""


def test_tritons_grpc_client_talks_to_us_unchanged(
    demo: RunningServer, demo_model_dir: Path
) -> None:
    """tritonclient, a real Open Inference Protocol client, calls us as its users would.

    It sends raw (binary) input contents and reads raw outputs: the other half of the protocol
    from the stubs above. It runs in its own process: its protobuf package ("inference") is the
    one KServe's modules register here.
    """
    done = subprocess.run(
        [sys.executable, "-c", TRITON_CLIENT, demo.grpc_target, json.dumps(ROWS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(done.stdout)
    rest = httpx.get(f"{demo.url}/v2/models/taxi").json()
    version = rest["versions"][0]
    assert found["live"] and found["ready"]
    assert found["metadata"] == ["taxi", [version], [o["name"] for o in rest["outputs"]]]
    labels, proba = expected(demo_model_dir)
    assert found["predict"] == labels
    np.testing.assert_allclose(found["predict_proba"], proba, atol=1e-6)
    assert found["response"] == ["triton-1", version]
    status, message = found["refused"]
    assert status == "StatusCode.INVALID_ARGUMENT"
    assert "expected 3 features" in message


def test_grpc_health_and_metadata(stub: GRPCInferenceServiceStub, demo: RunningServer) -> None:
    assert stub.ServerLive(pb.ServerLiveRequest()).live
    assert stub.ServerReady(pb.ServerReadyRequest()).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="taxi")).ready
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="taxi"))
    rest = httpx.get(f"{demo.url}/v2/models/taxi").json()
    assert list(metadata.versions) == rest["versions"]
    assert metadata.platform == rest["platform"]
    assert [i.name for i in metadata.inputs] == list(FEATURES)
    assert [(o.name, list(o.shape)) for o in metadata.outputs] == [
        ("predict", [-1]),
        ("predict_proba", [-1, 3]),
        ("decision_function", [-1, 3]),
    ]


def test_grpc_infer_with_contents_and_with_raw_bytes(
    stub: GRPCInferenceServiceStub, demo_model_dir: Path
) -> None:
    labels, proba = expected(demo_model_dir)
    flat = [v for row in ROWS for v in row]
    by_contents = stub.ModelInfer(
        pb.ModelInferRequest(
            model_name="taxi",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="x",
                    datatype="FP64",
                    shape=[3, 3],
                    contents=pb.InferTensorContents(fp64_contents=flat),
                )
            ],
            outputs=[
                pb.ModelInferRequest.InferRequestedOutputTensor(name="predict"),
                pb.ModelInferRequest.InferRequestedOutputTensor(name="predict_proba"),
            ],
        )
    )
    assert by_contents.model_version
    predict, probabilities = by_contents.outputs
    assert [b.decode() for b in predict.contents.bytes_contents] == labels
    np.testing.assert_allclose(
        np.asarray(probabilities.contents.fp64_contents).reshape(3, 3), proba, atol=1e-6
    )
    assert json.loads(probabilities.parameters["classes"].string_param) == [
        "long",
        "medium",
        "short",
    ]
    by_raw = stub.ModelInfer(
        pb.ModelInferRequest(
            model_name="taxi",
            inputs=[pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[3, 3])],
            raw_input_contents=[np.asarray(ROWS, dtype=np.float32).tobytes()],
        )
    )
    assert by_raw.model_version == by_contents.model_version
    assert len(by_raw.raw_output_contents) == 1


@pytest.mark.parametrize(
    ("request_", "code", "detail"),
    [
        (
            pb.ModelInferRequest(
                model_name="taxi",
                inputs=[
                    pb.ModelInferRequest.InferInputTensor(
                        name="x",
                        datatype="FP64",
                        shape=[1, 2],
                        contents=pb.InferTensorContents(fp64_contents=[1, 2]),
                    )
                ],
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "expected 3 features per row, got 2",
        ),
        (
            pb.ModelInferRequest(
                model_name="nope",
                inputs=[
                    pb.ModelInferRequest.InferInputTensor(
                        name="x",
                        datatype="FP64",
                        shape=[1, 3],
                        contents=pb.InferTensorContents(fp64_contents=[1, 2, 3]),
                    )
                ],
            ),
            grpc.StatusCode.NOT_FOUND,
            "Model with name nope does not exist.",
        ),
    ],
)
def test_grpc_errors_have_the_right_status(
    demo: RunningServer,
    stub: GRPCInferenceServiceStub,
    request_: pb.ModelInferRequest,
    code: grpc.StatusCode,
    detail: str,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request_)
    assert caught.value.code() == code
    assert detail in caught.value.details()
    assert stub.ServerLive(pb.ServerLiveRequest()).live
    assert "Traceback" not in demo.log()  # a caller's mistake is not a server error


def test_real_uvicorn_answers_413_and_keeps_serving(demo: RunningServer) -> None:
    big = b'{"instances": [' + b"[1,2,3]," * (17 * 1024 * 1024 // 8) + b"[1,2,3]]}"
    response = httpx.post(f"{demo.url}/v1/models/taxi:predict", content=big, timeout=30)
    assert response.status_code == 413
    assert response.json() == {"error": "request body is larger than the 16777216-byte limit"}
    ok = httpx.post(f"{demo.url}/v1/models/taxi:predict", json={"instances": ROWS})
    assert ok.status_code == 200


def test_settings_come_from_the_environment(server: ServerFactory, demo_model_dir: Path) -> None:
    running = server.start(
        None, name="env", env={"PREDICTOR_MODEL_URI": f"file://{demo_model_dir}"}
    )
    response = httpx.post(f"{running.url}/v1/models/env:predict", json={"instances": ROWS})
    assert response.status_code == 200


def test_grpc_answers_on_eight_threads_unless_told_otherwise(
    server: ServerFactory, demo: RunningServer, demo_model_dir: Path
) -> None:
    def logged(running: RunningServer, line: str) -> None:
        wait_until(lambda: line in running.log(), timeout=10, what=line, every=0.05)

    logged(demo, f"gRPC server listening on port {demo.grpc_port} (8 threads)")
    two = server.start(str(demo_model_dir), name="taxi", args=["--max_threads", "2"])
    logged(two, f"gRPC server listening on port {two.grpc_port} (2 threads)")


def test_serves_from_gcs(server: ServerFactory, gcs: GCSBucket, demo_model_dir: Path) -> None:
    generation = gcs.upload_file("taxi/v1/model.joblib", demo_model_dir / "model.joblib")
    running = server.start(gcs.uri("taxi/v1/"), name="taxi", env={"STORAGE_EMULATOR_HOST": gcs.url})
    response = httpx.post(f"{running.url}/v1/models/taxi:predict", json={"instances": ROWS})
    assert response.status_code == 200
    assert response.json()["model_version"].endswith(f"-g{generation}")
    assert f"-g{generation}" in running.log()


def test_two_uvicorn_workers_both_run_our_routes(
    server: ServerFactory, demo_model_dir: Path
) -> None:
    running = server.start(str(demo_model_dir), name="taxi", args=["--workers", "2"], timeout=60)
    for _ in range(6):
        response = httpx.post(
            f"{running.url}/v2/models/taxi/infer",
            content=b'{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP64","data":[1,2,3]}]}',
        )
        assert response.status_code == 200, response.text
        assert response.headers["x-model-version"]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("hdfs://nn/model.joblib", "unsupported model URI scheme 'hdfs:'"),
        ("/definitely/not/here", "no such file or folder: /definitely/not/here"),
    ],
)
def test_refused_start_is_one_line_and_exit_2(
    server: ServerFactory, uri: str, message: str
) -> None:
    refused = server.run_to_exit(uri)
    assert refused.process.returncode == 2
    log = refused.log()
    assert f"predictor: cannot serve model 'model': {message}" in log
    assert "Traceback" not in log


def test_missing_gcs_object_refuses_start(server: ServerFactory, gcs: GCSBucket) -> None:
    refused = server.run_to_exit(
        gcs.uri("missing/model.joblib"), env={"STORAGE_EMULATOR_HOST": gcs.url}
    )
    assert refused.process.returncode == 2
    assert f"{gcs.uri('missing/model.joblib')}: no such object" in refused.log()
    assert "Traceback" not in refused.log()


def test_wrong_digest_refuses_start(server: ServerFactory, demo_model_dir: Path) -> None:
    refused = server.run_to_exit(str(demo_model_dir), args=["--model_sha256", "a" * 64])
    assert refused.process.returncode == 1  # refused by its checks, not unable to run
    assert f"but the deployer pinned {'a' * 64}; refusing to unpickle it" in refused.log()


def test_missing_model_uri_is_a_config_error(server: ServerFactory) -> None:
    refused = server.run_to_exit(None)
    assert refused.process.returncode == 2
    assert (
        "invalid settings (model_uri, model_dir or model_repository: required, missing)"
        in refused.log()
    )


@pytest.mark.parametrize("which", ["http", "grpc"])
def test_a_port_in_use_refuses_start_before_anything_serves(
    server: ServerFactory, demo_model_dir: Path, which: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = server.run_to_exit(str(demo_model_dir), args=[f"--{which}_port", str(port)])
    assert refused.process.returncode == 2
    log = refused.log()
    what = {"http": "HTTP", "grpc": "gRPC"}[which]
    assert f"predictor: cannot serve model 'model': cannot listen for {what} on port {port}" in log
    assert "Started server process" not in log and "gRPC server listening" not in log
    assert "Traceback" not in log and "never awaited" not in log


def test_require_digest_refuses_an_unpinned_model_and_serves_a_pinned_one(
    server: ServerFactory, demo_model_dir: Path
) -> None:
    by_flag = server.run_to_exit(str(demo_model_dir), args=["--require_digest"])
    assert by_flag.process.returncode == 1
    assert "PREDICTOR_REQUIRE_DIGEST is on, but no PREDICTOR_MODEL_SHA256 is pinned" in (
        by_flag.log()
    )
    by_env = server.run_to_exit(str(demo_model_dir), env={"PREDICTOR_REQUIRE_DIGEST": "true"})
    assert by_env.process.returncode == 1
    digest = sha256_file(demo_model_dir / "model.joblib")
    running = server.start(
        str(demo_model_dir),
        name="taxi",
        env={"PREDICTOR_REQUIRE_DIGEST": "true", "PREDICTOR_MODEL_SHA256": digest},
    )
    reply = httpx.post(f"{running.url}/v1/models/taxi:predict", json={"instances": [[1, 2, 3]]})
    assert reply.status_code == 200


def test_a_custom_access_log_format_serves_through_the_app_and_logs_each_request(
    server: ServerFactory, demo_model_dir: Path
) -> None:
    running = server.start(
        str(demo_model_dir), name="taxi", args=["--access_log_format", "ACCESS %(r)s %(s)s"]
    )
    good = httpx.post(f"{running.url}/v1/models/taxi:predict", json={"instances": [[1, 2, 3]]})
    bad = httpx.post(f"{running.url}/v1/models/taxi:predict", json={"instances": [[1, 2]]})
    assert (good.status_code, bad.status_code) == (200, 400)
    assert bad.json() == {"error": "expected 3 features per row, got 2"}
    line = "ACCESS POST /v1/models/taxi:predict HTTP/1.1 400"
    wait_until(lambda: line in running.log(), timeout=10, what="the access log line", every=0.1)
    assert "ACCESS POST /v1/models/taxi:predict HTTP/1.1 200" in running.log()
    metrics = httpx.get(f"{running.url}/metrics").text
    assert 'status="400"' in metrics and 'status="200"' in metrics
