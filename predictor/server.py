"""The model server: KServe's ModelServer with our REST routes first and full gRPC metadata.

``PredictorServer.start`` follows ``kserve.ModelServer.start`` step by step; it differs only in
the REST server it builds (ours mounts ``predictor.rest`` routes before KServe's, in every
uvicorn worker process) and the gRPC servicer (whose model metadata carries ``versions`` and
``platform``). Health, readiness, model listing, ``/metrics`` and the repository API are KServe's.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import fastapi
import grpc
from grpc import aio
from kserve import ModelServer
from kserve.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
)
from kserve.model_server import args as kserve_args
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess
from kserve.protocol.rest.server import RESTServer, _RefreshingServer

from predictor import metrics
from predictor.asgi import front_door
from predictor.errors import OverloadedError
from predictor.logs import configure_logging
from predictor.model import SklearnModel
from predictor.rest import register_routes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestOptions:
    """What our REST server adds to KServe's: the body limit, the access log, the drain delay."""

    max_body_bytes: int = 16 * 1024 * 1024
    access_log: bool = False
    shutdown_delay_s: float = 0.0


class PredictorRESTServer(RESTServer):  # type: ignore[misc]
    """KServe's REST server with our routes and body limit, and no per-request timing log."""

    def __init__(self, *args: Any, options: RestOptions, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options = options
        self._server = DrainingServer(
            self.config, delay_s=options.shutdown_delay_s, registry=self.dataplane.model_registry
        )

    def run(self, sockets: list[Any] | None = None) -> None:
        """Serve in a uvicorn worker process (``--workers`` above 1)."""
        _die_with_parent()
        if kserve_args.configure_logging and not kserve_args.log_config_file:
            configure_logging(None, access_log=self.options.access_log)
        super().run(sockets=sockets)

    def create_application(self) -> None:
        """Configure KServe's global app (what uvicorn serves) with our routes first.

        The server also puts our inference endpoint in front of the whole app (see
        ``asgi.front_door``), unless a custom access-log format asks for its middleware to see
        every request.
        """
        from kserve.model_server import app

        self.configure_app(app)
        if not self.access_log_format:
            self._server.front = functools.partial(
                front_door,
                registry=self.dataplane.model_registry,
                handlers=app.exception_handlers,
                max_body_bytes=self.options.max_body_bytes,
            )

    def configure_app(self, app: fastapi.FastAPI) -> None:
        """Add middlewares, our routes, KServe's routes and KServe's error handlers to ``app``."""
        self._add_middlewares(app)
        self._register_endpoints(app)
        self._add_exception_handlers(app)

    def _add_middlewares(self, app: fastapi.FastAPI) -> None:
        # KServe adds a timing middleware that logs two INFO lines per request; we leave it out
        # and keep only the optional access-log format.
        if self.access_log_format:
            from asgi_logger import AccessLoggerMiddleware

            logging.getLogger("uvicorn.access").handlers = []
            app.add_middleware(AccessLoggerMiddleware, format=self.access_log_format)
            logging.getLogger("access").propagate = False

    def _register_endpoints(self, app: fastapi.FastAPI) -> None:
        register_routes(
            app,
            self.dataplane.model_registry,
            max_body_bytes=self.options.max_body_bytes,
            repository=self.model_repository_extension,
        )
        super()._register_endpoints(app)


class DrainingServer(_RefreshingServer):  # type: ignore[misc]
    """KServe's uvicorn server, which on SIGTERM first reports not-ready and keeps serving.

    For ``delay_s`` seconds the models' readiness is False (so the load balancer stops sending
    traffic) while requests, including those still waiting in the listen backlog, are served;
    then uvicorn's graceful shutdown stops listening and finishes the requests in flight.
    """

    def __init__(self, config: Any, *, delay_s: float, registry: Any) -> None:
        super().__init__(config)
        self.delay_s = delay_s
        self.registry = registry
        self.draining = False
        self.front: Callable[[Any], Any] | None = None
        """Wraps the loaded app before serving (``PredictorRESTServer`` sets it)."""

    async def serve(self, sockets: Any = None) -> None:
        """Load the app, put ``front`` before it, and serve as uvicorn does."""
        if not self.config.loaded:
            self.config.load()
        if self.front is not None:
            self.config.loaded_app = self.front(self.config.loaded_app)
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: Any) -> None:
        """First signal: drain, then exit; any later one: uvicorn's own handling."""
        if self.delay_s <= 0 or self.draining:
            super().handle_exit(sig, frame)
            return
        self.draining = True
        for model in self.registry.get_models().values():
            if isinstance(model, SklearnModel):
                model.draining = True
        logger.info("draining: not ready, serving for %.1fs before shutting down", self.delay_s)
        threading.Timer(self.delay_s, super().handle_exit, args=(sig, frame)).start()


MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


class PredictorInterceptor(ExceptionToStatusInterceptor):  # type: ignore[misc]
    """KServe's exception-to-status interceptor for every method but ``ModelInfer``.

    ``PredictorServicer.ModelInfer`` answers its own errors (with the same status codes), which
    saves the interceptor's wrapper on every inference call and keeps caller mistakes out of
    the ERROR log (KServe's interceptor logs each with a traceback).
    """

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        """Pass ``ModelInfer`` straight through; intercept everything else as KServe does."""
        if details.method == MODEL_INFER:
            return await continuation(details)
        return await super().intercept_service(continuation, details)


class PredictorServicer(InferenceServicer):  # type: ignore[misc]
    """KServe's gRPC servicer, with model metadata that carries versions and platform."""

    async def ModelInfer(  # noqa: N802 (gRPC method name)
        self, request: pb.ModelInferRequest, context: Any
    ) -> pb.ModelInferResponse:
        """Infer with our model directly (KServe's servicer for others), counted and timed.

        KServe's path adds a second decode, per-request latency log lines and its own timing
        around the same ``predict``; for our model the servicer calls ``infer_grpc`` itself.
        Errors become statuses here, as KServe's interceptor would map them.
        """
        model = self._data_plane.model_registry.get_model(request.model_name)
        served = isinstance(model, SklearnModel) and model.ready
        name = request.model_name if served else "unknown"
        status = grpc.StatusCode.INTERNAL
        with metrics.InFlight(name) as flight:
            try:
                if served:
                    self.validate_grpc_request(request)
                    with model.admitted():
                        response = await model.infer_grpc(request)
                else:
                    response = await super().ModelInfer(request, context)
                status = grpc.StatusCode.OK
                return response
            except Exception as e:
                status, detail = grpc_status(e)
                if status == grpc.StatusCode.INTERNAL:
                    logger.exception("inference failed on model %s", name)
                else:
                    logger.debug("gRPC inference refused: %s %s", status.name, detail)
            finally:
                version = model.version if served else "unknown"
                metrics.observe_request(name, version, "grpc", status.name, flight.elapsed)
        await context.abort(status, detail)
        raise AssertionError("context.abort() returned")  # it raises; this line is not reached

    async def ModelMetadata(  # noqa: N802 (gRPC method name)
        self, request: pb.ModelMetadataRequest, context: Any
    ) -> pb.ModelMetadataResponse:
        """Answer with the same metadata as REST, less what the message cannot carry."""
        model = self._data_plane.get_model_from_registry(request.name)
        if not isinstance(model, SklearnModel):
            return await super().ModelMetadata(request, context)
        metadata = model.metadata()
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=[_tensor_metadata(t) for t in metadata["inputs"]],
            outputs=[_tensor_metadata(t) for t in metadata["outputs"]],
        )


def new_event_loop(choice: str) -> asyncio.AbstractEventLoop:
    """The loop for the whole server, honouring ``--event-loop`` as uvicorn would.

    KServe runs uvicorn and gRPC inside its own loop, where uvicorn's loop setting has no effect;
    here ``auto`` (the default) and ``uvloop`` pick uvloop when it is installed.
    """
    if choice in ("auto", "uvloop"):
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            if choice == "uvloop":
                raise
    return asyncio.new_event_loop()


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when the server process dies, so none is left behind.

    KServe starts workers one by one, and a stop during start-up can miss the late ones.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        logger.debug("cannot ask to die with the parent process on this platform")


def grpc_status(error: Exception) -> tuple[grpc.StatusCode, str]:
    """The status and detail a ModelInfer error is answered with, as KServe's interceptor maps it.

    Overload, which KServe does not know, is RESOURCE_EXHAUSTED; anything unexpected is INTERNAL.
    """
    for kinds, code in (
        ((OverloadedError,), grpc.StatusCode.RESOURCE_EXHAUSTED),
        ((InvalidInput, InferenceError, UnsupportedProtocol), grpc.StatusCode.INVALID_ARGUMENT),
        ((ServerNotReady, ServerNotLive, ModelNotReady), grpc.StatusCode.UNAVAILABLE),
        ((ModelNotFound,), grpc.StatusCode.NOT_FOUND),
        ((NotImplementedError,), grpc.StatusCode.UNIMPLEMENTED),
    ):
        if isinstance(error, kinds):
            return code, str(getattr(error, "reason", error))
    return grpc.StatusCode.INTERNAL, "Internal server error"


def _tensor_metadata(tensor: dict[str, Any]) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"]
    )


class PredictorGRPCServer(GRPCServer):  # type: ignore[misc]
    """KServe's gRPC server, serving ``PredictorServicer``."""

    async def start(self, max_workers: int) -> None:
        """Start serving, as KServe does, with our servicer."""
        servicer = PredictorServicer(self._data_plane, self._model_repository_extension)
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(PredictorInterceptor(),),
            options=[
                ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                (
                    "grpc.max_receive_message_length",
                    self._kwargs.get("grpc_max_receive_message_length"),
                ),
            ],
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        self._server.add_insecure_port(f"[::]:{self._port}")
        logger.info("gRPC server listening on port %d", self._port)
        await self._server.start()
        await self._server.wait_for_termination()


class PredictorServer(ModelServer):  # type: ignore[misc]
    """``kserve.ModelServer`` wired to our REST routes and gRPC servicer."""

    def __init__(self, *, options: RestOptions, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.options = options

    def _build_rest_server(self) -> PredictorRESTServer:
        return PredictorRESTServer(
            "kserve.model_server:app",
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            access_log_format=self.access_log_format,
            workers=self.workers,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
            options=self.options,
        )

    def start(self, models: list[Any]) -> None:
        """Register the models and serve REST (and gRPC) until a signal stops the server."""
        self._register_and_check_atleast_one_model_is_ready(models)
        rest = self._build_rest_server()
        if self.workers > 1:
            multi = RESTServerMultiProcess(
                "kserve.model_server:app",
                self.dataplane,
                self.model_repository_extension,
                self.http_port,
                access_log_format=self.access_log_format,
                workers=self.workers,
                grace_period=self.grace_period,
                log_config_file=kserve_args.log_config_file,
                event_loop=self.event_loop,
                timeout_keep_alive=self.timeout_keep_alive,
            )
            multi._rest_server = rest  # every worker process runs our REST server
            self._rest_multiprocess_server = multi
            self.servers.append(multi.start())
        else:
            self._rest_server = rest
            self.servers.append(rest.start())
        if self.enable_grpc:
            self._grpc_server = PredictorGRPCServer(
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                kwargs=vars(kserve_args),
                grace_period=self.grace_period,
            )
            self.servers.append(self._grpc_server.start(self.max_threads))
        # One loop for everything, made before KServe's setup so that its executor and exception
        # handler apply to the loop that serves (asyncio.run would make another one).
        loop = new_event_loop(self.event_loop)
        asyncio.set_event_loop(loop)
        self.setup_event_loop()
        self.register_signal_handler()
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()
