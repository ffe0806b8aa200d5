"""Calling a deployed InferenceService: v1 and v2 over HTTP, v2 over gRPC; a thin adapter.

The call goes to the address given (an ingress, a port-forward) with the service's ``Host``
(``taxi.default.example.com``), as KServe's docs do with curl, and a bearer token when given;
over gRPC the host is the ``:authority``. An error answer is returned in the server's own words.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from predictor.client.shapes import Row, table_from_v1, table_from_v2, v1_body, v2_body, v2_inputs
from predictor.errors import CallError, EndpointError, EndpointUnreachableError


@dataclass(frozen=True)
class Endpoint:
    """Where to call and as whom."""

    url: str
    """``http(s)://address[:port]`` (an ingress gateway, a port-forward); for gRPC,
    ``address:port`` or ``grpc://address:port``."""
    model: str
    host: str | None = None
    token: str | None = None
    timeout_s: float = 30.0

    def headers(self) -> dict[str, str]:
        """The Host and Authorization headers to send."""
        found = {}
        if self.host:
            found["host"] = self.host
        if self.token:
            found["authorization"] = f"Bearer {self.token}"
        return found


def call(
    endpoint: Endpoint, protocol: str, rows: list[Row], outputs: list[str]
) -> tuple[list[str], list[list[Any]]]:
    """Send ``rows`` over ``protocol`` (v1, v2 or grpc); returns the answer as a table.

    Raises:
        EndpointError: the server answered with an error (its message, verbatim).
        EndpointUnreachableError: nothing answered.
    """
    if protocol == "v1":
        answer = _post(endpoint, f"/v1/models/{endpoint.model}:predict", v1_body(rows, outputs))
        return table_from_v1(answer, outputs)
    if protocol == "v2":
        answer = _post(endpoint, f"/v2/models/{endpoint.model}/infer", v2_body(rows, outputs))
        return table_from_v2(answer.get("outputs") or [])
    if protocol == "grpc":
        return table_from_v2(_grpc(endpoint, rows, outputs))
    raise CallError("--protocol: expected v1, v2 or grpc")


def _post(endpoint: Endpoint, path: str, body: dict[str, Any]) -> dict[str, Any]:
    import httpx

    url = endpoint.url.rstrip("/") + path
    try:
        response = httpx.post(
            url, json=body, headers=endpoint.headers(), timeout=endpoint.timeout_s
        )
    except httpx.HTTPError as e:
        raise EndpointUnreachableError(f"no answer from {url}: {type(e).__name__}") from e
    if response.status_code >= 400:
        raise EndpointError(f"{response.status_code} from {url}: {response.text.strip()}")
    try:
        answer = response.json()
    except ValueError as e:
        raise EndpointError(f"{response.status_code} from {url}, but not JSON") from e
    if not isinstance(answer, dict):
        raise EndpointError(f"{response.status_code} from {url}, but not a JSON object")
    return answer


def _kserve_v2() -> tuple[Any, Any, Any]:
    """KServe's v2 protobuf messages, stub and response decoder.

    Importing any part of ``kserve`` imports ``kserve.model_server``, which parses
    ``sys.argv`` at import and exits on options it does not know the way we use them
    (``--protocol grpc``); the command line is hidden from it for the import.
    """
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
        from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as stubs
        from kserve.protocol.infer_type import InferResponse
    finally:
        sys.argv = saved
    return pb, stubs, InferResponse


def _grpc(endpoint: Endpoint, rows: list[Row], outputs: list[str]) -> list[dict[str, Any]]:
    import grpc

    pb, stubs, InferResponse = _kserve_v2()  # noqa: N806 (a class)

    target = _grpc_target(endpoint.url)
    request = pb.ModelInferRequest(model_name=endpoint.model)
    for tensor in v2_inputs(rows):
        one = request.inputs.add(name=tensor["name"], datatype=tensor["datatype"])
        one.shape.extend(tensor["shape"])
        if tensor["datatype"] == "FP64":
            one.contents.fp64_contents.extend(tensor["data"])
        else:
            one.contents.bytes_contents.extend(v.encode() for v in tensor["data"])
    for name in outputs:
        request.outputs.add(name=name)
    options = [("grpc.default_authority", endpoint.host)] if endpoint.host else []
    metadata = [("authorization", f"Bearer {endpoint.token}")] if endpoint.token else []
    with grpc.insecure_channel(target, options=options) as channel:
        try:
            reply = stubs.GRPCInferenceServiceStub(channel).ModelInfer(
                request, metadata=metadata, timeout=endpoint.timeout_s
            )
        except grpc.RpcError as e:
            code, details = e.code(), e.details()
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise EndpointUnreachableError(f"{code.name} from {target}: {details}") from e
            raise EndpointError(f"{code.name} from {target}: {details}") from e
    answer = InferResponse.from_grpc(reply)
    return [
        {
            "name": o.name,
            "shape": list(o.shape),
            "data": [
                v.decode() if isinstance(v, bytes) else v for v in o.as_numpy().ravel().tolist()
            ],
            "parameters": {k: _scalar(v) for k, v in (o.parameters or {}).items()},
        }
        for o in answer.outputs
    ]


def _grpc_target(url: str) -> str:
    parsed = urlparse(url if "://" in url else f"grpc://{url}")
    if not parsed.hostname or not parsed.port:
        raise CallError("for gRPC, give the address as host:port")
    return f"{parsed.hostname}:{parsed.port}"


def _scalar(value: Any) -> Any:
    for field in ("string_param", "int64_param", "bool_param", "double_param"):
        if hasattr(value, "HasField") and value.HasField(field):
            return getattr(value, field)
    return value
