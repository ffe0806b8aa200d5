"""Our REST routes for inference and metadata, mounted on KServe's FastAPI app ahead of its own.

They replace KServe's v1 ``:predict``, v2 ``infer`` and v2 model metadata routes so that a
request is parsed once with orjson (no pydantic on the hot path), JSON without a Content-Type
works, the binary tensor extension is checked, every response names the model version (body
and ``x-model-version`` header), and a body over the limit gets 413 without being read whole.
Errors are raised as KServe's exception types; KServe's handlers turn them into statuses.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from kserve.errors import ModelNotFound, ModelNotReady
from kserve.model_repository import ModelRepository
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from predictor import metrics
from predictor.errors import PredictorError
from predictor.home import home_document, prefers_html, render_html
from predictor.model import SklearnModel
from predictor.v2_rest import JSON_LENGTH_HEADER, parse_infer_body, parse_json

VERSION_HEADER = "x-model-version"
JSON = "application/json"


class BodyTooLargeError(PredictorError):
    """The request body is over the configured limit (HTTP 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than the {limit}-byte limit")


class ModelVersionNotFound(ModelNotFound):  # type: ignore[misc]
    """A versioned route named a version this server does not serve (HTTP 404)."""

    def __init__(self, name: str, asked: str, served: str) -> None:
        super().__init__(name)
        self.reason = f"model {name} has no version {asked!r}; it serves {served!r}"


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
        for key, value in scope.get("headers", ()):
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await too_large_response(self.max_bytes)(scope, receive, send)
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


INFERENCE_PATHS = (
    (re.compile(r"^/v1/models/([^/:]+):predict$"), "v1"),
    (re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/infer$"), "v2"),
)


def inference_route(path: str) -> tuple[str, str] | None:
    """The model name and protocol of an inference path; None for any other path."""
    for pattern, protocol in INFERENCE_PATHS:
        match = pattern.match(path)
        if match:
            return match.group(1), protocol
    return None


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
        route = inference_route(scope.get("path", ""))
        if route is None:
            await self.app(scope, receive, send)
            return
        asked, protocol = route
        model = self.registry.get_model(asked)
        served = isinstance(model, SklearnModel) and model.ready
        name = asked if served else "unknown"  # unknown names must not mint new label sets
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with metrics.InFlight(name) as flight:
            try:
                await self.app(scope, receive, capture)
            finally:
                version = model.version if served else "unknown"
                metrics.observe_request(name, version, protocol, str(status), flight.elapsed)


def too_large_response(limit: int) -> Response:
    """The 413 answer, in the same ``{"error": ...}`` shape as every other error."""
    return Response(
        content=orjson.dumps({"error": str(BodyTooLargeError(limit))}),
        status_code=413,
        media_type=JSON,
        headers={"connection": "close"},
    )


def register_routes(app: FastAPI, registry: ModelRepository, *, max_body_bytes: int) -> None:
    """Mount our routes and the body limit on ``app``; call before KServe adds its own."""

    def model_named(name: str) -> SklearnModel:
        model = registry.get_model(name)
        if not isinstance(model, SklearnModel):
            raise ModelNotFound(name)
        if not model.ready:
            raise ModelNotReady(name)
        return model

    def json_response(body: Any, version: str) -> Response:
        return Response(
            content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
            media_type=JSON,
            headers={VERSION_HEADER: version},
        )

    async def predict_v1(model_name: str, request: Request) -> Response:
        model = model_named(model_name)
        body = parse_json(await request.body())
        return json_response(await model.infer_v1(body), model.version)

    async def infer_v2(
        model_name: str, request: Request, model_version: str | None = None
    ) -> Response:
        model = model_named(model_name)
        if model_version is not None and model_version != model.version:
            raise ModelVersionNotFound(model_name, model_version, model.version)
        infer_request = parse_infer_body(
            await request.body(),
            json_length=request.headers.get(JSON_LENGTH_HEADER),
            model_name=model_name,
        )
        result, json_length = await model.infer_v2_rest(infer_request)
        if isinstance(result, bytes):
            return Response(
                content=result,
                media_type="application/octet-stream",
                headers={VERSION_HEADER: model.version, JSON_LENGTH_HEADER: str(json_length)},
            )
        return json_response(result, model.version)

    async def metadata_v2(model_name: str, model_version: str | None = None) -> Response:
        model = registry.get_model(model_name)
        if not isinstance(model, SklearnModel):
            raise ModelNotFound(model_name)
        if model_version is not None and model_version != model.version:
            raise ModelVersionNotFound(model_name, model_version, model.version)
        return json_response(model.metadata(), model.version)

    async def home(request: Request) -> Response:
        models = [m for m in registry.get_models().values() if isinstance(m, SklearnModel)]
        document = home_document(models)
        if prefers_html(request.headers.get("accept")):
            return HTMLResponse(render_html(document))
        return Response(content=orjson.dumps(document), media_type=JSON)

    async def metrics_endpoint() -> Response:
        return Response(content=metrics.exposition(), media_type=metrics.CONTENT_TYPE)

    async def body_too_large(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, BodyTooLargeError)
        return too_large_response(max_body_bytes)

    app.add_api_route("/", home, methods=["GET"])
    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"])
    app.add_api_route("/v1/models/{model_name}:predict", predict_v1, methods=["POST"])
    app.add_api_route("/v2/models/{model_name}/infer", infer_v2, methods=["POST"])
    app.add_api_route(
        "/v2/models/{model_name}/versions/{model_version}/infer", infer_v2, methods=["POST"]
    )
    app.add_api_route("/v2/models/{model_name}", metadata_v2, methods=["GET"])
    app.add_api_route(
        "/v2/models/{model_name}/versions/{model_version}", metadata_v2, methods=["GET"]
    )
    app.add_exception_handler(BodyTooLargeError, body_too_large)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(MetricsMiddleware, registry=registry)
