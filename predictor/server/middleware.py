"""The middlewares in front of inference: body limit, metrics, and the server's front door.

``BodyLimitMiddleware`` refuses bodies over the limit; ``MetricsMiddleware`` counts and times
inference requests with the status that went on the wire. They are app middlewares around
``asgi.InferenceEndpoint`` (so the FastAPI app is complete on its own, e.g. under a test client).
``FrontDoor`` is all three as one, in front of the whole app for the server: inference requests
skip the framework's own layers (proxy headers, Starlette's error and telemetry middlewares,
FastAPI's body limit) and the per-request wrappers of the three.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kserve.model_repository import ModelRepository
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from predictor.errors import BodyTooLargeError
from predictor.metrics import record as metrics
from predictor.repository.errors import InvalidModelNameError
from predictor.repository.names import MAX_LENGTH, has_encoded_separator
from predictor.server.asgi import (
    ANSWERED_BY_KEY,
    ROUTE_KEY,
    Handler,
    InferenceEndpoint,
    Route,
    header,
    inference_route,
)
from predictor.server.failures import error_response
from predictor.server.model import SklearnModel
from predictor.server.model_store import ModelStore


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes``: at once by Content-Length, else while reading."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, counting its body against the limit."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if declared_length(scope) > self.max_bytes:
            await error_response(BodyTooLargeError(self.max_bytes))(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        await self.app(scope, limited, send)


class MetricsMiddleware:
    """Count and time inference requests, labelled with the status that went on the wire."""

    def __init__(self, app: ASGIApp, registry: ModelRepository) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request; record it when its path is an inference route."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if names_a_path(scope):
            await error_response(InvalidModelNameError(MAX_LENGTH))(scope, receive, send)
            return
        route = inference_route(scope.get("path", ""))
        if route is None:
            await self.app(scope, receive, send)
            return
        scope[ROUTE_KEY] = route  # matched once: the endpoint reads it
        with Observed(scope, self.registry, route) as sent:

            async def capture(message: Message) -> None:
                if message["type"] == "http.response.start":
                    sent.status = message["status"]
                await send(message)

            await self.app(scope, receive, capture)


class Observed:
    """An inference request counted in flight, then by the status it was answered with.

    ``with Observed(...) as sent``: whoever answers sets ``sent.status``. A request that raised
    before anything was sent counts as a 500; a client that went away (nothing sent, nothing
    raised) is not counted.
    """

    __slots__ = ("_flight", "_name", "_protocol", "_scope", "_version", "status")

    def __init__(self, scope: Scope, registry: ModelRepository, route: Route) -> None:
        self._scope = scope
        self._name, self._version = labels_for(registry, route[0])
        self._protocol = route[1]
        self._flight = metrics.InFlight(self._name)
        self.status: int | None = None
        """The status sent; None while nothing was sent."""

    def __enter__(self) -> Observed:
        self._flight.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self._flight.__exit__()
        if kind is not None:
            self.status = self.status or 500
        if self.status is not None:
            _observe(
                self._scope,
                self._name,
                self._version,
                self._protocol,
                self.status,
                self._flight.elapsed,
            )


class FrontDoor:
    """The server's front: the three middlewares above as one, for inference POSTs.

    It does what ``MetricsMiddleware(BodyLimitMiddleware(InferenceEndpoint))`` does (count and
    time the request with the status sent, refuse a body over the limit, answer), without a
    wrapper around ``send`` and ``receive`` per request. Anything else goes to that stack.
    """

    def __init__(
        self,
        app: ASGIApp,
        registry: ModelRepository,
        handlers: Mapping[Any, Handler],
        max_body_bytes: int,
    ) -> None:
        self.registry = registry
        self.max_bytes = max_body_bytes
        self.endpoint = InferenceEndpoint(app, registry, handlers, max_bytes=max_body_bytes)
        self.stack = MetricsMiddleware(
            BodyLimitMiddleware(InferenceEndpoint(app, registry, handlers), max_body_bytes),
            registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer an inference POST here; pass anything else to the stack."""
        route = inference_route(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None or scope.get("method") != "POST" or names_a_path(scope):
            await self.stack(scope, receive, send)
            return
        with Observed(scope, self.registry, route) as sent:
            if declared_length(scope) > self.max_bytes:
                too_large = error_response(BodyTooLargeError(self.max_bytes))
                await too_large(scope, receive, send)
                sent.status = too_large.status_code
            else:
                sent.status = await self.endpoint.serve(route, scope, receive, send)


MODEL_PATHS = ("/v1/models/", "/v2/models/", "/v2/repository/")


def names_a_path(scope: Scope) -> bool:
    """Whether a request names a model with an encoded slash (refused: names are not paths)."""
    path: str = scope.get("path", "")
    return path.startswith(MODEL_PATHS) and has_encoded_separator(scope.get("raw_path") or b"")


def labels_for(registry: ModelRepository, asked: str) -> tuple[str, str]:
    """The model and version labels of a request for model ``asked``.

    A name that is not ours, or not ready, is counted as "unknown": unknown names must not mint
    new label sets. A model of a repository that is not loaded yet is counted under its name,
    and under the version that answered (the endpoint names it) once it has.
    """
    model = registry.get_model(asked)
    if isinstance(model, SklearnModel) and model.ready:
        return asked, model.version
    if isinstance(registry, ModelStore) and registry.label(asked) == asked:
        return asked, "unknown"  # a model of the repository, not loaded yet: the answer names it
    return "unknown", "unknown"


def _observe(
    scope: Scope, name: str, version: str, protocol: str, status: int, seconds: float
) -> None:
    """Count a finished request, under the bandit arm that answered when the endpoint named one."""
    version = scope.get(ANSWERED_BY_KEY, version)
    metrics.observe_request(name, version, protocol, str(status), seconds)


def declared_length(scope: Scope) -> int:
    """The request's Content-Length (0 when absent or not a number)."""
    value = header(scope, b"content-length")
    return int(value) if value is not None and value.isascii() and value.isdigit() else 0


def front_door(
    app: ASGIApp, registry: ModelRepository, handlers: Mapping[Any, Handler], max_body_bytes: int
) -> ASGIApp:
    """Metrics, body limit and inference endpoint in front of ``app`` (the served ASGI app).

    ``handlers`` are the app's exception handlers, which include KServe's catch-all for
    ``Exception`` (a 500), so an error here is answered exactly as inside the app.
    """
    return FrontDoor(app, registry, handlers, max_body_bytes)
