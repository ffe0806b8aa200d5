"""The model server: KServe's ModelServer with our REST routes first and full gRPC metadata.

``PredictorServer.start`` follows ``kserve.ModelServer.start`` step by step; it differs only in
the REST server it builds (ours mounts ``predictor.server.rest`` routes before KServe's and puts the
inference endpoint in front of the app, in every uvicorn worker process), the gRPC server
(``predictor.server.grpc_server``), the event loop, and the order of shutdown (the models are
unloaded after gRPC has answered its calls in flight). Health, readiness, model listing and the
repository API are KServe's.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fastapi
from kserve import ModelServer
from kserve.model_server import args as kserve_args
from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess
from kserve.protocol.rest.server import RESTServer
from kserve.utils.inference_client_factory import InferenceClientFactory

from predictor.errors import PortInUseError
from predictor.server import failures
from predictor.server.draining import DrainingServer
from predictor.server.grpc_server import PredictorGRPCServer
from predictor.server.logs import configure_logging
from predictor.server.middleware import front_door
from predictor.server.model import SklearnModel
from predictor.server.rest import register_routes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestOptions:
    """What our REST server adds to KServe's: the body limit, the access log, the drain delay."""

    max_body_bytes: int = 16 * 1024 * 1024
    access_log: bool = False
    shutdown_delay_s: float = 0.0
    shutdown_quiet_s: float = 0.5
    docs_url: str | None = None


class PredictorRESTServer(RESTServer):  # type: ignore[misc]
    """KServe's REST server with our routes and body limit, and no per-request timing log."""

    def __init__(self, *args: Any, options: RestOptions, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options = options
        self._server = DrainingServer(
            self.config,
            delay_s=options.shutdown_delay_s,
            quiet_s=options.shutdown_quiet_s,
            registry=self.dataplane.model_registry,
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
        ``middleware.front_door``), unless a custom access-log format asks for its middleware to see
        every request.
        """
        from kserve.model_server import app

        self.configure_app(app)
        self._server.front = functools.partial(self.served, handlers=app.exception_handlers)
        start_native_engines(self.dataplane.model_registry)  # in each process that serves REST

    def served(self, app: Any, handlers: Mapping[Any, Any]) -> Any:
        """What uvicorn serves for ``app``: our inference front door before it (``front_door``).

        Not with a custom access-log format, whose middleware must see every request.
        """
        if self.access_log_format:
            return app
        return front_door(
            app,
            registry=self.dataplane.model_registry,
            handlers=handlers,
            max_body_bytes=self.options.max_body_bytes,
        )

    def configure_app(self, app: fastapi.FastAPI) -> None:
        """Add our routes, KServe's routes, the error handlers and the middlewares to ``app``.

        The access-log middleware goes on last, outermost, so that it sees every request,
        inference included (our inference middlewares are added with our routes).
        """
        self._register_endpoints(app)
        self._add_exception_handlers(app)
        failures.install(app)  # after KServe's, so that ours replaces its catch-all
        self._add_middlewares(app)

    def _add_middlewares(self, app: fastapi.FastAPI) -> None:
        # KServe adds a timing middleware that logs two INFO lines per request; we leave it out
        # and keep only the optional access-log format.
        if self.access_log_format:
            from asgi_logger.middleware import AccessLoggerMiddleware

            logging.getLogger("uvicorn.access").handlers = []
            app.add_middleware(AccessLoggerMiddleware, format=self.access_log_format)
            logging.getLogger("access").propagate = False

    def _register_endpoints(self, app: fastapi.FastAPI) -> None:
        register_routes(
            app,
            self.dataplane.model_registry,
            max_body_bytes=self.options.max_body_bytes,
            repository=self.model_repository_extension,
            docs_url=self.options.docs_url,
        )
        super()._register_endpoints(app)


def start_native_engines(registry: Any) -> None:
    """Start converting the ready models' bare pickles for the native engine, in this process.

    Only once the app is built: a conversion's ``warnings.catch_warnings`` is not thread-safe, and
    one running while FastAPI builds the routes (which silences a pydantic warning the same way)
    can leave the process's warning filters changed.
    """
    for model in registry.get_models().values():
        if isinstance(model, SklearnModel) and model.ready:
            model.start_native_engines()


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


class PredictorServer(ModelServer):  # type: ignore[misc]
    """``kserve.ModelServer`` wired to our REST routes and gRPC servicer."""

    def __init__(self, *, options: RestOptions, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.options = options
        self._shutdown: asyncio.Task[None] | None = None

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
        """Register the models and serve REST (and gRPC) until a signal stops the server.

        Raises:
            PortInUseError: the HTTP or gRPC port cannot be bound (checked before anything is
                served; uvicorn binds the HTTP port itself, so only a race can still lose it).
        """
        self._register_and_check_atleast_one_model_is_ready(models)
        ensure_port_free(self.http_port, "HTTP", "--http_port")
        # One loop for everything, made before KServe's setup so that its executor and exception
        # handler apply to the loop that serves (asyncio.run would make another one).
        loop = new_event_loop(self.event_loop)
        if self.enable_grpc:
            self._grpc_server = PredictorGRPCServer(
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                kwargs=vars(kserve_args),
                grace_period=self.grace_period,
            )
            try:
                self._grpc_server.bind(self.max_threads, loop)
            except PortInUseError:
                loop.close()
                raise
        asyncio.set_event_loop(loop)
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
            if self._grpc_server is not None:
                start_native_engines(self.registered_models)  # gRPC is served from this process
        else:
            self._rest_server = rest
            self.servers.append(rest.start())
        if self._grpc_server is not None:
            self.servers.append(self._grpc_server.start(self.max_threads))
        self.setup_event_loop()
        self.register_signal_handler()
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    def stop(self, sig: int) -> None:
        """Stop as KServe does, but unload the models only once gRPC has answered its calls.

        KServe unloads them at once, while its gRPC server is still finishing the calls in flight,
        which then answer NOT_FOUND. Called by KServe's signal handler, on the loop's thread.
        """
        if self._shutdown is None:
            self._shutdown = asyncio.get_running_loop().create_task(self._shut_down(sig))

    async def _shut_down(self, sig: int) -> None:
        await InferenceClientFactory().close()
        logger.info("Stopping the model server")
        if self._rest_multiprocess_server:
            await self._rest_multiprocess_server.stop(sig)
        if self._grpc_server:
            await self._grpc_server.stop(sig)
        for name in list(self.registered_models.get_models()):
            self.registered_models.unload(name)
        getattr(self.registered_models, "close", lambda: None)()  # a model repository's loads

    async def _serve(self) -> None:
        await asyncio.gather(*self.servers)
        if self._shutdown is not None:
            await self._shutdown  # the models are unloaded before the loop ends


def ensure_port_free(port: int, what: str, flag: str) -> None:
    """Check that ``port`` can be bound on every interface, as uvicorn will bind it.

    Raises:
        PortInUseError: it cannot (in use, or not ours to take).
    """
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(("0.0.0.0", port))  # where the server will listen
        except OSError as e:
            raise PortInUseError(
                f"cannot listen for {what} on port {port}: {e.strerror or e} "
                f"(choose another with {flag})"
            ) from e
