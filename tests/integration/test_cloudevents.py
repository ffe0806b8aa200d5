"""CloudEvents through a real server process, made and read with the ``cloudevents`` SDK.

Binary mode (``ce-*`` headers) is answered as stock KServe answers it; structured mode
(``application/cloudevents+json``) gets a structured event back, which stock KServe does not do.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import pandas as pd
import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent, from_http

from tests.helpers import RunningServer, ServerFactory

ROWS = [[1.0, 200.0, 2.0], [5.0, 10.0, 1.0]]
NAME = "taxi"


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path
) -> Iterator[RunningServer]:
    factory = ServerFactory(tmp_path_factory.mktemp("ce"))
    yield factory.start(str(demo_model_dir / "model.joblib"), name=NAME)
    factory.stop_all()


@pytest.fixture(scope="module")
def expected(demo_model_dir: Path) -> list[str]:
    model = joblib.load(demo_model_dir / "model.joblib")
    frame = pd.DataFrame(ROWS, columns=list(model.feature_names_in_))
    return [str(label) for label in model.predict(frame)]


def request_event(data: object) -> CloudEvent:
    return CloudEvent(
        {"type": "org.example.taxi.trip", "source": "https://example.com/trips"}, data
    )


V1 = f"/v1/models/{NAME}:predict"
V2 = f"/v2/models/{NAME}/infer"


def v2_body() -> dict[str, object]:
    return {
        "id": "trip-7",
        "inputs": [{"name": "input-0", "shape": [2, 3], "datatype": "FP64", "data": ROWS}],
    }


def test_binary_mode_v1_is_answered_with_ce_headers(
    running: RunningServer, expected: list[str]
) -> None:
    headers, body = to_binary(request_event({"instances": ROWS}))
    response = httpx.post(running.url + V1, headers=headers, content=body)

    assert response.status_code == 200, response.text
    event = from_http(dict(response.headers), response.content)
    assert event["specversion"] == "1.0"
    assert event["type"] == "io.kserve.inference.response"
    assert event["source"] == f"io.kserve.inference.{NAME}"
    assert event["id"] and event["id"] != headers["ce-id"]
    assert "time" in event.get_attributes()
    assert event.data["predictions"] == expected
    assert response.headers["content-type"] == "application/json"


def test_binary_mode_v2_is_answered_with_ce_headers(
    running: RunningServer, expected: list[str]
) -> None:
    headers, body = to_binary(request_event(v2_body()))
    response = httpx.post(running.url + V2, headers=headers, content=body)

    assert response.status_code == 200, response.text
    event = from_http(dict(response.headers), response.content)
    assert event["type"] == "io.kserve.inference.response"
    assert event.data["id"] == "trip-7"
    assert event.data["outputs"][0]["data"] == expected


@pytest.mark.parametrize("path", [V1, V2])
def test_structured_mode_gets_a_structured_event_back(
    running: RunningServer, expected: list[str], path: str
) -> None:
    data = {"instances": ROWS} if path == V1 else v2_body()
    headers, body = to_structured(request_event(data))
    response = httpx.post(running.url + path, headers=headers, content=body)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/cloudevents+json"
    event = from_http(dict(response.headers), response.content)
    assert event["type"] == "io.kserve.inference.response"
    assert event["source"] == f"io.kserve.inference.{NAME}"
    assert event["datacontenttype"] == "application/json"
    answer = event.data
    predictions = answer["predictions"] if path == V1 else answer["outputs"][0]["data"]
    assert predictions == expected
    assert answer["model_version"] == response.headers["x-model-version"]


def test_a_structured_event_asking_binary_outputs_gets_them_base64(running: RunningServer) -> None:
    data = dict(v2_body(), parameters={"binary_data_output": True})
    headers, body = to_structured(request_event(data))
    response = httpx.post(running.url + V2, headers=headers, content=body)

    assert response.status_code == 200, response.text
    event = json.loads(response.content)
    assert event["datacontenttype"] == "application/octet-stream" and "data" not in event
    raw = base64.b64decode(event["data_base64"])
    length = int(response.headers["inference-header-content-length"])
    header = json.loads(raw[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert header["id"] == "trip-7" and sizes and len(raw) == length + sum(sizes)


def test_a_binary_event_missing_a_header_gets_400_naming_it(running: RunningServer) -> None:
    headers, body = to_binary(request_event({"instances": ROWS}))
    del headers["ce-source"]
    del headers["ce-type"]
    response = httpx.post(running.url + V1, headers=headers, content=body)

    assert response.status_code == 400
    assert "missing: ce-source, ce-type" in response.json()["error"]


def test_a_structured_event_without_data_or_type_gets_400_naming_them(
    running: RunningServer,
) -> None:
    response = httpx.post(
        running.url + V1,
        headers={"content-type": "application/cloudevents+json"},
        json={"specversion": "1.0", "id": "1", "source": "s"},
    )

    assert response.status_code == 400
    assert "missing: type, data" in response.json()["error"]


def test_an_event_whose_data_is_a_bad_request_gets_the_usual_400(running: RunningServer) -> None:
    headers, body = to_structured(request_event({"rows": ROWS}))
    response = httpx.post(running.url + V1, headers=headers, content=body)

    assert response.status_code == 400
    assert "expected 'instances' or 'inputs'" in response.json()["error"]


def test_a_plain_request_carries_no_ce_headers(running: RunningServer) -> None:
    response = httpx.post(running.url + V1, json={"instances": ROWS})

    assert response.status_code == 200
    assert not [k for k in response.headers if k.lower().startswith("ce-")]


def test_a_lone_ce_id_is_not_an_event(running: RunningServer) -> None:
    """KServe's logger agent sets ce-id on each request it forwards; that is a plain request."""
    response = httpx.post(running.url + V1, json={"instances": ROWS}, headers={"ce-id": "abc"})

    assert response.status_code == 200
    assert response.json()["model_version"]
    assert "ce-id" not in response.headers
