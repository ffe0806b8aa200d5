"""The predictor behind KServe's inference logger, as its agent sends events, to a real sink.

KServe's logger is a Go agent beside the predictor (``spec.predictor.logger``); it cannot run
here. ``LoggerAgent`` below stands in for it, doing what the agent is documented to do: take the
request's ``ce-id`` (or make one and set it on the forwarded request), forward the request to
the predictor, and send two binary-mode CloudEvents to the logger URL, the request
(``org.kubeflow.serving.inference.request``) and the response (``...response``), both with that
id and the service's name. The predictor, the HTTP traffic and the sink are real; what is
checked is our half: the forwarded request (with its lone ``ce-id``) is served as a plain
request, the two events share their id, and the response event names the model version.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent, from_http

from tests.helpers import RunningServer, ServerFactory, free_port

NAME = "taxi"
ROWS = [[1.0, 200.0, 2.0]]


class Sink:
    """An HTTP server that keeps every CloudEvent posted to it (read with the SDK)."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["content-length"]))
                events.append(from_http(dict(self.headers), body))
                self.send_response(202)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class LoggerAgent:
    """A stand-in for KServe's logger agent: forward, then log request and response as events."""

    def __init__(self, predictor: str, sink: str) -> None:
        self.predictor = predictor
        self.sink = sink

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        event_id = headers.get("ce-id") or str(uuid.uuid4())
        forwarded = dict(headers, **{"ce-id": event_id})
        self._log("org.kubeflow.serving.inference.request", event_id, body)
        response = httpx.post(self.predictor + path, content=body, headers=forwarded)
        self._log("org.kubeflow.serving.inference.response", event_id, response.content)
        return response

    def _log(self, kind: str, event_id: str, data: bytes) -> None:
        attributes = {
            "type": kind,
            "source": f"http://localhost:9081/v1/models/{NAME}",
            "id": event_id,
            "inferenceservicename": NAME,
            "namespace": "default",
            "component": "predictor",
            "endpoint": "default",
            "datacontenttype": "application/json",
        }
        headers, body = to_binary(CloudEvent(attributes, data))
        httpx.post(self.sink, headers=headers, content=body).raise_for_status()


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path
) -> Iterator[RunningServer]:
    factory = ServerFactory(tmp_path_factory.mktemp("logger"))
    yield factory.start(str(demo_model_dir / "model.joblib"), name=NAME)
    factory.stop_all()


@pytest.fixture
def sink() -> Iterator[Sink]:
    found = Sink()
    yield found
    found.stop()


def data_of(event: CloudEvent) -> Any:
    data = event.get_data()
    return httpx.Response(200, content=data).json() if isinstance(data, bytes) else data


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_request_and_response_events_share_their_id_and_name_the_model_version(
    running: RunningServer, sink: Sink, protocol: str
) -> None:
    agent = LoggerAgent(running.url, sink.url)
    body: dict[str, Any]
    if protocol == "v1":
        path, body = f"/v1/models/{NAME}:predict", {"instances": ROWS}
    else:
        path = f"/v2/models/{NAME}/infer"
        body = {
            "id": "trip-1",
            "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": ROWS}],
        }

    response = agent.post(
        path, httpx.Request("POST", "/", json=body).content, {"content-type": "application/json"}
    )

    assert response.status_code == 200, response.text
    request_event, response_event = sink.events
    assert request_event["type"].endswith(".request") and response_event["type"].endswith(
        ".response"
    )
    assert request_event["id"] == response_event["id"]
    answer = data_of(response_event)
    assert answer["model_version"] == response.headers["x-model-version"]
    assert answer == response.json()
    if protocol == "v2":
        assert answer["id"] == data_of(request_event)["id"] == "trip-1"


def test_a_caller_id_becomes_the_events_id(running: RunningServer, sink: Sink) -> None:
    agent = LoggerAgent(running.url, sink.url)
    body = httpx.Request("POST", "/", json={"instances": ROWS}).content

    response = agent.post(
        f"/v1/models/{NAME}:predict", body, {"content-type": "application/json", "ce-id": "abc-1"}
    )

    assert response.status_code == 200
    assert [e["id"] for e in sink.events] == ["abc-1", "abc-1"]
