"""REST routes in-process (TestClient): statuses, bodies and headers on v1 and v2.

Covers: predictions equal scikit-learn's on the same artifact, per-request outputs with class
labels, v2 JSON with and without Content-Type, the binary tensor extension both ways, versioned
routes, metadata, and each caller mistake as a 4xx with an ``{"error": ...}`` body.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import joblib
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from predictor.demo import FEATURES
from predictor.server.asgi import InferenceEndpoint
from predictor.server.middleware import front_door
from tests.estimators import BAD_INPUT, BROKEN, ChoosyRegressor
from tests.helpers import in_process_app, served_app

ROWS = [[1.0, 200.0, 2.0], [17.0, 18.0, 1.0], [40.0, 250.0, 6.0]]


@pytest.fixture(scope="module")
def demo_client(demo_model_dir: Path) -> Iterator[TestClient]:
    with TestClient(
        in_process_app(str(demo_model_dir), name="taxi", max_body_bytes=4096)
    ) as client:
        yield client


@pytest.fixture(scope="module")
def regressor_client(regressor_file: Path) -> Iterator[TestClient]:
    with TestClient(in_process_app(f"file://{regressor_file}", name="reg")) as client:
        yield client


@pytest.fixture(scope="module")
def demo_estimator(demo_model_dir: Path) -> object:
    return joblib.load(demo_model_dir / "model.joblib")


def frame(rows: list[list[float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(FEATURES))


def test_v1_predictions_equal_sklearn_on_the_same_artifact(
    demo_client: TestClient, demo_estimator: object
) -> None:
    response = demo_client.post("/v1/models/taxi:predict", json={"instances": ROWS})
    assert response.status_code == 200
    expected = demo_estimator.predict(frame(ROWS)).tolist()  # type: ignore[attr-defined]
    body = response.json()
    assert body["predictions"] == expected
    assert body["model_version"] == response.headers["x-model-version"]
    assert len(body["model_version"]) == 12


def test_v1_probabilities_come_with_their_class_labels(
    demo_client: TestClient, demo_estimator: object
) -> None:
    response = demo_client.post(
        "/v1/models/taxi:predict",
        json={
            "instances": [dict(zip(FEATURES, r, strict=True)) for r in ROWS],
            "parameters": {"outputs": ["predict", "predict_proba"]},
        },
    )
    assert response.status_code == 200
    body = response.json()
    expected = demo_estimator.predict_proba(frame(ROWS))  # type: ignore[attr-defined]
    assert body["classes"] == ["long", "medium", "short"]
    # compiled, or native once converted in the background (float32 sums): within 1e-6
    np.testing.assert_allclose(body["predict_proba"], expected, rtol=0, atol=1e-6)
    assert body["predictions"] == body["predict"]


def test_v2_json_without_content_type(demo_client: TestClient, demo_estimator: object) -> None:
    payload = {
        "id": "r1",
        "inputs": [{"name": "input-0", "shape": [3, 3], "datatype": "FP64", "data": sum(ROWS, [])}],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    response = demo_client.post("/v2/models/taxi/infer", content=json.dumps(payload).encode())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "r1"
    assert body["model_name"] == "taxi"
    assert body["model_version"] == response.headers["x-model-version"]
    predict, proba = body["outputs"]
    assert predict == {
        "name": "predict",
        "shape": [3],
        "datatype": "BYTES",
        "data": demo_estimator.predict(frame(ROWS)).tolist(),  # type: ignore[attr-defined]
    }
    assert proba["shape"] == [3, 3]
    assert json.loads(proba["parameters"]["classes"]) == ["long", "medium", "short"]


def test_v2_one_tensor_per_named_feature(demo_client: TestClient) -> None:
    columns = list(zip(*ROWS, strict=True))
    inputs = [
        {"name": name, "shape": [3], "datatype": "INT32", "data": [int(v) for v in col]}
        for name, col in zip(
            ["passenger_count", "pickup_zone", "dropoff_zone"],
            [columns[2], columns[0], columns[1]],
            strict=True,
        )
    ]
    by_matrix = demo_client.post(
        "/v2/models/taxi/infer",
        json={"inputs": [{"name": "x", "shape": [3, 3], "datatype": "FP64", "data": ROWS}]},
    )
    by_column = demo_client.post("/v2/models/taxi/infer", json={"inputs": inputs})
    assert by_column.status_code == 200, by_column.text
    assert by_column.json()["outputs"] == by_matrix.json()["outputs"]


def test_v2_binary_tensor_extension_in_and_out(demo_client: TestClient) -> None:
    raw = np.asarray(ROWS, dtype=np.float32).tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [3, 3],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "predict_proba", "parameters": {"binary_data": True}}],
        }
    ).encode()
    response = demo_client.post(
        "/v2/models/taxi/infer",
        content=header + raw,
        headers={
            "inference-header-content-length": str(len(header)),
            "content-type": "application/octet-stream",
        },
    )
    assert response.status_code == 200, response.text
    json_length = int(response.headers["inference-header-content-length"])
    document = json.loads(response.content[:json_length])
    (output,) = document["outputs"]
    assert output["parameters"]["binary_data_size"] == 3 * 3 * 8
    probabilities = np.frombuffer(response.content[json_length:], dtype=np.float64).reshape(3, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_v2_metadata_is_taken_from_the_estimator(demo_client: TestClient) -> None:
    body = demo_client.get("/v2/models/taxi").json()
    assert body["versions"] == [demo_client.get("/v2/models/taxi").headers["x-model-version"]]
    assert body["platform"].startswith("sklearn_")
    assert body["inputs"] == [
        {"name": "pickup_zone", "datatype": "FP64", "shape": [-1]},
        {"name": "dropoff_zone", "datatype": "FP64", "shape": [-1]},
        {"name": "passenger_count", "datatype": "FP64", "shape": [-1]},
    ]
    assert body["outputs"] == [
        {"name": "predict", "datatype": "BYTES", "shape": [-1]},
        {
            "name": "predict_proba",
            "datatype": "FP64",
            "shape": [-1, 3],
            "parameters": {"classes": ["long", "medium", "short"]},
        },
        {"name": "decision_function", "datatype": "FP64", "shape": [-1, 3]},
    ]


def test_regressor_metadata_has_one_matrix_input_and_no_probabilities(
    regressor_client: TestClient,
) -> None:
    body = regressor_client.get("/v2/models/reg").json()
    assert body["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert [o["name"] for o in body["outputs"]] == ["predict", "contributions", "base_value"]
    assert body["parameters"]["explain"] == "linear"  # its explanations are listed, not proba


def test_versioned_routes_answer_only_for_the_served_version(demo_client: TestClient) -> None:
    version = demo_client.get("/v2/models/taxi").json()["versions"][0]
    payload = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": ROWS[0]}]}
    assert (
        demo_client.post(f"/v2/models/taxi/versions/{version}/infer", json=payload).status_code
        == 200
    )
    wrong = demo_client.post("/v2/models/taxi/versions/nope/infer", json=payload)
    assert wrong.status_code == 404
    assert wrong.json() == {"error": f"model taxi has no such version; it serves {version!r}"}


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/v1/models/taxi:predict", b"{bad", 400, "the request body is not valid JSON"),
        ("/v2/models/taxi/infer", b"{bad", 400, "the request body is not valid JSON"),
        ("/v1/models/taxi:predict", b"", 400, "the request body is empty"),
        (
            "/v1/models/taxi:predict",
            b'{"rows": [[1,2,3]]}',
            400,
            "expected 'instances' or 'inputs'",
        ),
        ("/v1/models/taxi:predict", b'{"instances": []}', 400, "'instances' is empty"),
        (
            "/v1/models/taxi:predict",
            b'{"instances": [[1,2]]}',
            400,
            "expected 3 features per row, got 2",
        ),
        (
            "/v1/models/taxi:predict",
            b'{"instances": [[1,2,3],[1]]}',
            400,
            "row 1: expected 3 features, got 1",
        ),
        (
            "/v1/models/taxi:predict",
            b'{"instances": [[1,"a",3]]}',
            400,
            "row 0, feature 'dropoff_zone': expected a number",
        ),
        (
            "/v1/models/taxi:predict",
            b'{"instances": [[1,null,3]]}',
            400,
            "got a missing value (NaN/null)",
        ),
        (
            "/v1/models/taxi:predict",
            b'{"instances": [{"pickup_zone": 1}]}',
            400,
            "missing feature(s) 'dropoff_zone'",
        ),
        (
            "/v1/models/taxi:predict",
            b'{"instances": [[1,2,3]], "parameters": {"outputs": ["x"]}}',
            400,
            "unknown output name; this model gives: predict, predict_proba",
        ),
        (
            "/v1/models/nope:predict",
            b'{"instances": [[1,2,3]]}',
            404,
            "no model of that name is served here",
        ),
        ("/v2/models/nope/infer", b'{"inputs": []}', 404, "no model of that name is served here"),
        (
            "/v2/models/taxi/infer",
            b'{"inputs": []}',
            400,
            "expected 'inputs' to be a non-empty list",
        ),
        (
            "/v2/models/taxi/infer",
            b'{"inputs": [{"shape": [1], "datatype": "FP64", "data": [1]}]}',
            400,
            "inputs[0] needs a 'name'",
        ),
        (
            "/v2/models/taxi/infer",
            b'{"inputs": [{"name": "x", "shape": [1,3], "datatype": "FP99", "data": [1,2,3]}]}',
            400,
            "unsupported datatype 'FP99'",
        ),
        (
            "/v2/models/taxi/infer",
            b'{"inputs": [{"name": "x", "shape": [1,3], "datatype": "FP64"}]}',
            400,
            "no 'data' and no binary_data_size",
        ),
        (
            "/v2/models/taxi/infer",
            b'{"inputs": [{"name": "x", "shape": [2,3], "datatype": "FP64", "data": [1,2,3]}]}',
            400,
            "data does not fit datatype FP64 and shape [2, 3]",
        ),
    ],
)
def test_caller_mistakes_are_4xx_with_a_clear_error(
    demo_client: TestClient, path: str, body: bytes, status: int, error: str
) -> None:
    response = demo_client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    assert error in response.json()["error"]
    # The server still answers the next valid request.
    assert demo_client.post("/v1/models/taxi:predict", json={"instances": ROWS}).status_code == 200


def test_predict_proba_on_a_regressor_is_a_400(regressor_client: TestClient) -> None:
    response = regressor_client.post(
        "/v1/models/reg:predict",
        json={"instances": [[1, 2, 3, 4]], "parameters": {"outputs": ["predict_proba"]}},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "this regression model has no predict_proba; it gives: predict"
    }


def test_body_over_the_limit_by_content_length_is_413(demo_client: TestClient) -> None:
    response = demo_client.post("/v1/models/taxi:predict", content=b" " * 5000)
    assert response.status_code == 413
    assert response.json() == {"error": "request body is larger than the 4096-byte limit"}


def test_body_over_the_limit_without_content_length_is_413(demo_client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    response = demo_client.post("/v2/models/taxi/infer", content=chunks())
    assert response.status_code == 413
    assert "4096-byte limit" in response.json()["error"]


def test_binary_sizes_that_do_not_add_up_are_refused(demo_client: TestClient) -> None:
    header = b'{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP64","parameters":{"binary_data_size":24}}]}'
    response = demo_client.post(
        "/v2/models/taxi/infer",
        content=header + struct.pack("<2d", 1.0, 2.0),
        headers={"inference-header-content-length": str(len(header))},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "input 'x': binary_data_size is 24, but only 16 bytes remain"
    }


def test_the_front_door_answers_inference_without_entering_the_app(demo_model_dir: Path) -> None:
    app = in_process_app(f"file://{demo_model_dir}", name="taxi", max_body_bytes=4096)
    entered: list[str] = []

    async def served(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            entered.append(scope["path"])
        await app(scope, receive, send)

    registry = next(
        m.kwargs["registry"] for m in app.user_middleware if m.cls is cast(Any, InferenceEndpoint)
    )
    front = front_door(served, registry, app.exception_handlers, max_body_bytes=4096)
    with TestClient(front) as client:
        ok = client.post("/v1/models/taxi:predict", json={"instances": [[1.0, 2.0, 3.0]]})
        bad = client.post("/v2/models/taxi/infer", content=b"{")
        big = client.post("/v1/models/taxi:predict", content=b" " * 5000)
        live = client.get("/v2/health/live")
    assert (ok.status_code, bad.status_code, big.status_code, live.status_code) == (
        200,
        400,
        413,
        200,
    )
    assert ok.headers["x-model-version"] and bad.json()["error"].startswith("the request body")
    assert entered == ["/v2/health/live"]


@pytest.fixture(scope="module")
def choosy_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    path = tmp_path_factory.mktemp("choosy") / "model.joblib"
    joblib.dump(ChoosyRegressor().fit(np.zeros((4, 2)), np.zeros(4)), path)
    with TestClient(
        served_app(f"file://{path}", name="choosy"), raise_server_exceptions=False
    ) as client:
        yield client


def test_an_estimator_refusing_the_data_is_a_400_without_the_values(
    choosy_client: TestClient,
) -> None:
    for path, body in (
        ("/v1/models/choosy:predict", {"instances": [[1.0, BAD_INPUT]]}),
        (
            "/v2/models/choosy/infer",
            {
                "inputs": [
                    {"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, BAD_INPUT]}
                ]
            },
        ),
    ):
        response = choosy_client.post(path, json=body)
        assert response.status_code == 400, response.text
        assert response.json() == {
            "error": "the model rejected the input: unorderable types: … and …"
        }


def test_an_estimator_that_breaks_is_a_clean_500_with_the_request_id(
    choosy_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    good = choosy_client.post("/v1/models/choosy:predict", json={"instances": [[1.0, 2.0]]})
    assert good.json()["predictions"] == [3.0]
    response = choosy_client.post(
        "/v1/models/choosy:predict",
        json={"instances": [[4242.5, BROKEN]]},
        headers={"x-request-id": "req-42"},
    )
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal server error; the server log has the details under request id req-42"
    }
    assert response.headers["x-request-id"] == "req-42"
    assert "RuntimeError (request id req-42)" in caplog.text
    assert "4242.5" not in caplog.text  # the caller's row stays out of the log
    unnamed = choosy_client.post("/v1/models/choosy:predict", json={"instances": [[BROKEN, 0]]})
    assert unnamed.status_code == 500
    rid = unnamed.headers["x-request-id"]
    assert unnamed.json()["error"].endswith(f"under request id {rid}") and len(rid) == 36


def test_a_client_gone_mid_body_gets_no_answer_and_is_not_counted(demo_model_dir: Path) -> None:
    import asyncio

    from predictor.metrics import exposition as metrics

    app = served_app(f"file://{demo_model_dir}", name="gone", max_body_bytes=4096)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/models/gone:predict",
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
    }
    messages: Iterator[dict[str, object]] = iter(
        [
            {"type": "http.request", "body": b'{"instances": [[1, 2', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return next(messages)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent == []  # nobody is listening: no 500, no answer at all
    counted = [
        line
        for line in metrics.exposition().decode().splitlines()
        if line.startswith('predictor_requests_total{model="gone"') and not line.endswith(" 0.0")
    ]
    assert counted == []  # its series exist from the load, at 0, and stay there


def test_an_inference_path_asked_with_get_is_a_405_that_names_post(
    demo_client: TestClient,
) -> None:
    for path in ("/v1/models/taxi:predict", "/v2/models/taxi/infer", "/v1/models/other:predict"):
        reply = demo_client.get(path)
        assert reply.status_code == 405, path
        assert reply.headers["allow"] == "POST"
        assert reply.json() == {"error": "inference takes POST; send the request body with POST"}
