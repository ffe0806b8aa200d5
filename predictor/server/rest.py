"""Our REST surface on KServe's FastAPI app, mounted ahead of KServe's own routes.

Inference (v1 ``:predict``, v2 ``infer``) is answered by ``asgi.InferenceEndpoint`` before the
router: parsed once with orjson (no pydantic on the hot path), JSON with or without a
Content-Type, the binary tensor extension, the model version in every response (body and
``x-model-version`` header), 413 for bodies over the limit without reading them whole. The
routes here are the v2 model metadata (with versions, class labels and lineage), model readiness
(versioned too), the repository extension (index, load, unload: ``repository_api``), a bandit's
feedback, the home page and ``/metrics``. With a model repository, metadata and feedback load
their model first, as inference does. Our errors, and anything unexpected, are answered by
``failures.rest_error``; KServe's own routes keep KServe's handlers for KServe's exceptions.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from kserve.model_repository import ModelRepository
from kserve.protocol.model_repository_extension import ModelRepositoryExtension

from predictor.errors import ModelNotReadyError
from predictor.metrics import exposition as metrics
from predictor.protocol.v2_rest import parse_json
from predictor.server import repository_api
from predictor.server.asgi import JSON, InferenceEndpoint, json_response, not_served
from predictor.server.home import home_document, live_history, prefers_html, render_html
from predictor.server.middleware import BodyLimitMiddleware, MetricsMiddleware
from predictor.server.model import SklearnModel
from predictor.server.model_store import ModelStore

logger = logging.getLogger(__name__)


def register_routes(
    app: FastAPI,
    registry: ModelRepository,
    *,
    max_body_bytes: int,
    repository: ModelRepositoryExtension | None = None,
    docs_url: str | None = None,
) -> None:
    """Mount our routes and the body limit on ``app``; call before KServe adds its own."""
    store = registry if isinstance(registry, ModelStore) else None
    history = live_history()  # the home page's recent numbers

    def ours(name: str, version: str | None = None) -> SklearnModel:
        if store is not None:
            store.check_name(name)  # 400 before anything looks for it
        model = registry.get_model(name)
        if not isinstance(model, SklearnModel):
            if store is not None and store.label(name) != "unknown":
                raise ModelNotReadyError(name)  # in the repository, not loaded
            raise not_served(name)
        if version is not None and model.ready:
            model.at(version)  # 404 unless that version answers here
        return model

    @contextlib.asynccontextmanager
    async def served(name: str, version: str | None = None) -> AsyncIterator[SklearnModel]:
        # A model of the repository is loaded by the first call that needs it.
        if store is None:
            yield ours(name, version)
            return
        async with store.pool.leased(name):
            yield ours(name, version)

    async def ready_v2(model_name: str, model_version: str | None = None) -> Response:
        # KServe's own route answers 501 for any version; ours knows the one it serves.
        model = ours(model_name, model_version)
        if not await model.healthy():
            raise ModelNotReadyError(model_name)
        return Response(content=orjson.dumps({"name": model_name, "ready": True}), media_type=JSON)

    async def repository_index(request: Request) -> Response:
        body = await request.body()
        asked = parse_json(body) if body.strip() else {}
        ready_only = isinstance(asked, dict) and asked.get("ready") is True
        entries = await repository_api.index(registry, ready_only=ready_only)
        return Response(content=orjson.dumps([e.document() for e in entries]), media_type=JSON)

    async def repository_load(model_name: str) -> Response:
        # KServe answers 503 "not ready" for a name it does not know; that is a 404.
        await repository_api.load(registry, repository, model_name)
        return Response(content=orjson.dumps({"name": model_name, "load": True}), media_type=JSON)

    async def repository_unload(model_name: str) -> Response:
        await repository_api.unload(registry, repository, model_name)
        return Response(content=orjson.dumps({"name": model_name, "unload": True}), media_type=JSON)

    async def metadata_v2(model_name: str, model_version: str | None = None) -> Response:
        async with served(model_name, model_version) as model:
            metadata = model.metadata(model_version)
            return json_response(metadata, model_version or model.version)

    async def home(request: Request) -> Response:
        models = [m for m in registry.get_models().values() if isinstance(m, SklearnModel)]
        document = home_document(models)
        if prefers_html(request.headers.get("accept")):
            return HTMLResponse(render_html(document, models, history, docs_url))
        return Response(content=orjson.dumps(document), media_type=JSON)

    async def feedback(model_name: str, request: Request) -> Response:
        # A bandit's reward for one response: {"id": "<response id>", "reward": 0..1}.
        model = ours(model_name)
        answer = model.feedback(parse_json(await request.body()))
        return Response(content=orjson.dumps(answer), media_type=JSON)

    async def metrics_endpoint() -> Response:
        return Response(content=metrics.exposition(), media_type=metrics.CONTENT_TYPE)

    app.add_api_route("/", home, methods=["GET"])
    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}", metadata_v2, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}/ready", ready_v2, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}/feedback", feedback, methods=["POST"])
    app.add_api_route(
        "/v2/models/{model_name}/versions/{model_version}/ready", ready_v2, methods=["GET"]
    )
    app.add_api_route("/v2/repository/index", repository_index, methods=["POST"])
    app.add_api_route("/v2/repository/models/{model_name}/load", repository_load, methods=["POST"])
    app.add_api_route(
        "/v2/repository/models/{model_name}/unload", repository_unload, methods=["POST"]
    )
    app.add_api_route(
        "/v2/models/{model_name}/versions/{model_version}", metadata_v2, methods=["GET"]
    )

    # Innermost first: the endpoint, then the body limit around it, then metrics around both.
    app.add_middleware(InferenceEndpoint, registry=registry, handlers=app.exception_handlers)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(MetricsMiddleware, registry=registry)
