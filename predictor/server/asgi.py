"""The inference endpoint in front of KServe's FastAPI app (its middlewares: ``middleware``).

``InferenceEndpoint`` answers the inference routes (v1 ``:predict`` and ``:explain``, v2
``infer``, versioned or not) before FastAPI's router sees them: no request object, no
dependency injection, the body read once and parsed once with orjson, the answer sent as two
raw ASGI messages (``RawResponse``). Errors go to the app's own exception handlers (KServe's for
its exceptions, ``failures.rest_error`` for ours and for anything unexpected), found by the
exception's MRO exactly as Starlette would, so each error maps to a status in one place. A
client that goes away mid-body gets no answer and is not counted.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from kserve.model_repository import ModelRepository
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from predictor.errors import (
    BodyTooLargeError,
    ClientGoneError,
    MethodNotAllowedError,
    ModelNotFoundError,
    ModelNotReadyError,
)
from predictor.protocol.events import (
    BINARY,
    STRUCTURED,
    binary_headers,
    request_event,
    response_attributes,
    structured_body,
)
from predictor.protocol.v2_rest import JSON_LENGTH_HEADER, parse_infer_body, parse_json
from predictor.server.failures import REQUEST_ID_HEADER, error_response
from predictor.server.model import SklearnModel
from predictor.server.model_store import ModelStore

VERSION_HEADER = "x-model-version"
JSON = "application/json"
OCTETS = "application/octet-stream"
Handler = Callable[[Request, Any], Any]
"""A Starlette exception handler: ``(request, exc)`` to a Response (or an awaitable of one)."""


def not_served(name: str) -> ModelNotFoundError:
    """The 404 for a model this server does not serve (a version: ``answers.lane_for``)."""
    return ModelNotFoundError("no model of that name is served here; GET /v2/models lists them")


INFERENCE_PATHS = (
    (re.compile(r"^/v1/models/([^/:]+):predict$"), "v1"),
    (re.compile(r"^/v1/models/([^/:]+):explain$"), "explain"),
    (re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$"), "v2"),
)


Route = tuple[str, str, str | None]
"""An inference path's model name, protocol (``v1``, ``v2`` or ``explain``: v1 ``:explain``)
and the version asked (if any)."""


def inference_route(path: str) -> Route | None:
    """(model name, protocol, version asked) of an inference path; None for any other path."""
    for pattern, protocol in INFERENCE_PATHS:
        match = pattern.match(path)
        if match:
            version = match.group(2) if protocol == "v2" else None
            return match.group(1), protocol, version
    return None


ROUTE_KEY = "predictor.route"
"""Where ``MetricsMiddleware`` leaves the inference route it matched, for the endpoint."""
ANSWERED_BY_KEY = "predictor.answered_by"
"""Where the endpoint leaves the version that answered (a bandit's arm), for the metrics."""


class RawResponse:
    """A response sent as its two ASGI messages, headers encoded once (no Starlette Response).

    Called like a Starlette response; the inference endpoint answers with it, which saves about
    a tenth of a small request's time.
    """

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, body: bytes, media_type: str, extra: Mapping[str, str], status: int = 200
    ) -> None:
        self.body = body
        self.status = status
        self.headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", media_type.encode()),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the status and headers, then the body."""
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def json_response(body: Any, version: str) -> Response:
    """A JSON response naming the model version (numpy arrays serialised natively)."""
    return Response(
        content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        media_type=JSON,
        headers={VERSION_HEADER: version},
    )


class InferenceEndpoint:
    """Answer POSTs to inference paths directly; everything else goes on to the app."""

    def __init__(
        self,
        app: ASGIApp,
        registry: ModelRepository,
        handlers: Mapping[Any, Handler],
        max_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.registry = registry
        self.store = registry if isinstance(registry, ModelStore) else None
        """The model repository, when this server serves one (models are leased from it)."""
        self.handlers = handlers  # the app's own exception handlers (filled in after this is built)
        self.max_bytes = max_bytes
        """Refuse bodies above this while reading them (when no body limit stands in front)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve an inference request, or pass the request on."""
        route: Route | None = None
        if scope["type"] == "http":
            route = scope.get(ROUTE_KEY) or inference_route(scope.get("path", ""))
        if route is None:
            await self.app(scope, receive, send)
            return
        if scope.get("method") != "POST":
            await error_response(MethodNotAllowedError())(scope, receive, send)
            return
        await self.serve(route, scope, receive, send)

    async def serve(self, route: Route, scope: Scope, receive: Receive, send: Send) -> int | None:
        """Answer an inference POST; the status sent (None: the client went away first)."""
        try:
            response = await self._answer(*route, scope, receive)
        except ClientGoneError:
            return None  # nobody is left to answer
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise
            response = handler(Request(scope, receive), exc)
            if inspect.isawaitable(response):
                response = await response
        await response(scope, receive, send)
        return response.status if isinstance(response, RawResponse) else response.status_code

    def _handler_for(self, exc: Exception) -> Handler | None:
        for kind in type(exc).__mro__:
            if kind in self.handlers:
                return self.handlers[kind]
        return None

    async def _answer(
        self, name: str, protocol: str, asked_version: str | None, scope: Scope, receive: Receive
    ) -> RawResponse:
        if self.store is not None:
            pool = self.store.pool
            lease = pool.lease(name)
            try:
                leased = await pool.model(lease)
                with leased.admitted():
                    return await self._infer(leased, name, protocol, asked_version, scope, receive)
            finally:
                pool.release(name, lease)
        model = self.registry.get_model(name)
        if not isinstance(model, SklearnModel):
            raise not_served(name)
        if not model.ready:
            raise ModelNotReadyError(name)
        with model.admitted():
            return await self._infer(model, name, protocol, asked_version, scope, receive)

    async def _infer(
        self,
        model: SklearnModel,
        name: str,
        protocol: str,
        asked_version: str | None,
        scope: Scope,
        receive: Receive,
    ) -> RawResponse:
        body = await read_body(receive, self.max_bytes)
        headers = scope.get("headers", ())
        event = request_event(headers, body)
        if event is not None and event.data is not None:
            body = event.data
        key = header(scope, model.sticky_header.encode()) if model.sticky_header else None
        if protocol == "v1":
            answer, split, version, feedback_id = await model.infer_v1(parse_json(body), key)
        elif protocol == "explain":
            answer, split, version, feedback_id = await model.explain_v1(body)
        else:
            json_length = header(scope, JSON_LENGTH_HEADER.encode())
            request = parse_infer_body(body, json_length=json_length, model_name=name)
            answer, split, version, feedback_id = await model.infer_v2_rest(
                request, asked_version, key
            )
        # The version that answered (a bandit's arm), for the header and the request metrics.
        extra = {VERSION_HEADER: version}
        scope[ANSWERED_BY_KEY] = version
        if feedback_id is not None:  # the id a feedback for this answer names
            extra[REQUEST_ID_HEADER] = feedback_id
        if isinstance(answer, bytes):
            extra[JSON_LENGTH_HEADER] = str(split)
            content, media_type = answer, OCTETS
        else:
            content = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
            media_type = JSON
        if event is None:
            return RawResponse(content, media_type, extra)
        attributes = response_attributes(name)
        if event.mode == BINARY:
            extra.update(binary_headers(attributes))
            return RawResponse(content, media_type, extra)
        return RawResponse(structured_body(attributes, content, media_type), STRUCTURED, extra)


async def read_body(receive: Receive, max_bytes: int | None = None) -> bytes:
    """The whole request body.

    Raises:
        ClientGoneError: the client went away.
        BodyTooLargeError: more than ``max_bytes`` arrived (a body limit in front raises too).
    """
    chunks = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError()
        chunk = message.get("body", b"")
        received += len(chunk)
        if max_bytes is not None and received > max_bytes:
            raise BodyTooLargeError(max_bytes)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (``name`` in lower case), if present."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None
