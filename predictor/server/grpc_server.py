"""The gRPC side of the server: grpc's threaded server, our ModelInfer, KServe's other methods.

Inference runs on gRPC's worker threads (KServe's ``--max_threads``, 8 by default here):
grpc's threaded server carries about 1.75 times the calls per second of ``grpc.aio`` on one
core (measured with a servicer that returns a constant), and the threads batch their requests
together (``ThreadBatcher``). ``ThreadedServicer.ModelInfer`` answers our model on the calling
thread, counted and timed, and answers errors with ``failures.grpc_status``. Every other method
(health, readiness, metadata, the repository extension, and inference for a model that is not
ours) is KServe's coroutine, run on the server's event loop. Model metadata carries
``versions`` and ``platform``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from concurrent import futures
from typing import Any

import grpc
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer

from predictor.errors import ModelNotReadyError, PortInUseError
from predictor.metrics import record as metrics
from predictor.protocol.repository_pb import (
    SERVICE,
    RepositoryIndexRequest,
    RepositoryIndexResponse,
    RepositoryModelRequest,
    requested_model,
)
from predictor.server import repository_api
from predictor.server.failures import grpc_status
from predictor.server.model import SklearnModel
from predictor.server.model_store import ModelStore

logger = logging.getLogger(__name__)

LOOP_CHECK_SECONDS = 1.0
"""How often a gRPC thread waiting on the event loop checks that the loop still runs."""


class PredictorServicer(InferenceServicer):  # type: ignore[misc]
    """KServe's (asyncio) gRPC servicer, with model metadata that carries versions and platform."""

    async def ModelMetadata(  # noqa: N802 (gRPC method name)
        self, request: pb.ModelMetadataRequest, context: Any
    ) -> pb.ModelMetadataResponse:
        """Answer with the same metadata as REST, less what the message cannot carry."""
        registry = self._data_plane.model_registry
        if isinstance(registry, ModelStore):  # loaded by the first call that needs it
            async with registry.pool.leased(request.name) as leased:
                return _metadata_message(leased.metadata())
        model = self._data_plane.get_model_from_registry(request.name)
        if not isinstance(model, SklearnModel):
            return await super().ModelMetadata(request, context)
        return _metadata_message(model.metadata())

    async def RepositoryIndex(  # noqa: N802 (gRPC method name)
        self, request: Any, context: Any
    ) -> Any:
        """Every model of the repository with its state (Triton's ``RepositoryIndex``)."""
        registry = self._data_plane.model_registry
        entries = await repository_api.index(registry, ready_only=request.ready)
        return RepositoryIndexResponse(
            models=[
                RepositoryIndexResponse.ModelIndex(
                    name=e.name, version=e.version, state=e.state, reason=e.reason
                )
                for e in entries
            ]
        )

    async def RepositoryModelLoad(  # noqa: N802 (gRPC method name)
        self, request: Any, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        """Load a model, named as KServe's or Triton's client names it (``repository_pb``).

        KServe's own answers INTERNAL whatever happens.
        """
        name = requested_model(request)
        await repository_api.load(
            self._data_plane.model_registry, self._mode_repository_extension, name
        )
        return pb.RepositoryModelLoadResponse(model_name=name, isLoaded=True)

    async def RepositoryModelUnload(  # noqa: N802 (gRPC method name)
        self, request: Any, context: Any
    ) -> pb.RepositoryModelUnloadResponse:
        """Unload a model, named as either client names it."""
        name = requested_model(request)
        await repository_api.unload(
            self._data_plane.model_registry, self._mode_repository_extension, name
        )
        return pb.RepositoryModelUnloadResponse(model_name=name, isUnloaded=True)


def sticky_key(context: grpc.ServicerContext, model: SklearnModel) -> str | None:
    """The value of the model's sticky header in the call's metadata (gRPC keys are lower case)."""
    if model.sticky_header is None:
        return None
    for key, value in context.invocation_metadata() or ():
        if key == model.sticky_header and isinstance(value, str):
            return value
    return None


def _metadata_message(metadata: dict[str, Any]) -> pb.ModelMetadataResponse:
    """The v2 metadata document as gRPC's message (what it can carry)."""
    return pb.ModelMetadataResponse(
        name=metadata["name"],
        versions=metadata["versions"],
        platform=metadata["platform"],
        inputs=[_tensor_metadata(t) for t in metadata["inputs"]],
        outputs=[_tensor_metadata(t) for t in metadata["outputs"]],
    )


class ThreadedServicer:
    """The servicer gRPC's worker threads call; see the module docstring."""

    def __init__(self, servicer: PredictorServicer, loop: asyncio.AbstractEventLoop) -> None:
        self._servicer = servicer
        self._loop = loop

    def ModelInfer(  # noqa: N802 (gRPC method name)
        self, request: pb.ModelInferRequest, context: grpc.ServicerContext
    ) -> pb.ModelInferResponse:
        """Infer with our model on this thread (KServe's servicer for others), counted and timed."""
        registry = self._servicer._data_plane.model_registry
        lease: contextlib.AbstractContextManager[SklearnModel]
        if isinstance(registry, ModelStore):
            name, lease = (
                registry.label(request.model_name),
                registry.pool.leased_blocking(request.model_name),
            )
        else:
            model = registry.get_model(request.model_name)
            if not (isinstance(model, SklearnModel) and model.ready):
                return self._kserve_infer(request, context)
            name, lease = request.model_name, contextlib.nullcontext(model)
        status, version = grpc.StatusCode.INTERNAL, "unknown"
        with metrics.InFlight(name) as flight:
            try:
                self._servicer.validate_grpc_request(request)
                with lease as served, served.admitted():
                    version = served.version
                    response = served.infer_grpc(request, sticky_key(context, served))
                status, version = grpc.StatusCode.OK, response.model_version  # who answered
                return response
            except Exception as e:
                status, detail = grpc_status(e, request.id, f"gRPC inference on model {name}")
            finally:
                metrics.observe_request(name, version, "grpc", status.name, flight.elapsed)
        context.abort(status, detail)
        raise AssertionError("context.abort() returned")  # it raises; this line is not reached

    def _kserve_infer(
        self, request: pb.ModelInferRequest, context: grpc.ServicerContext
    ) -> pb.ModelInferResponse:
        """A model that is not ours (or not ready): KServe's servicer answers, counted."""
        status = grpc.StatusCode.INTERNAL
        with metrics.InFlight("unknown") as flight:
            try:
                response = self._on_loop(self._servicer.ModelInfer(request, _CallMetadata(context)))
                status = grpc.StatusCode.OK
                return response
            except Exception as e:
                status, detail = grpc_status(e, request.id, "gRPC inference")
            finally:
                metrics.observe_request("unknown", "unknown", "grpc", status.name, flight.elapsed)
        context.abort(status, detail)
        raise AssertionError("context.abort() returned")

    def __getattr__(self, method: str) -> Callable[[Any, grpc.ServicerContext], Any]:
        """Any other method of the service: KServe's coroutine, run on the event loop."""
        coroutine = getattr(self._servicer, method)

        def call(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return self._on_loop(coroutine(request, _CallMetadata(context)))
            except Exception as e:
                status, detail = grpc_status(e, None, f"gRPC {method}")
            context.abort(status, detail)

        return call

    def _on_loop(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coroutine`` on the server's loop and wait for it; UNAVAILABLE if the loop ends.

        Raises:
            ModelNotReadyError: the loop stopped before the coroutine finished (a start that
                failed), so it never will; waiting on would keep this thread, and the process,
                forever.
        """
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        while True:
            try:
                return future.result(timeout=LOOP_CHECK_SECONDS)
            except futures.TimeoutError:
                if not self._loop.is_running():
                    future.cancel()
                    coroutine.close()  # it will never be awaited now
                    raise ModelNotReadyError("any (the server is shutting down)") from None


class _CallMetadata:
    """The part of a call's context that KServe's coroutines read: its metadata, as a list.

    (grpc's threaded context differs from grpc.aio's in ``trailing_metadata``, which KServe's
    ``to_headers`` would add to the request headers.)
    """

    def __init__(self, context: grpc.ServicerContext) -> None:
        self._metadata = list(context.invocation_metadata())

    def invocation_metadata(self) -> list[Any]:
        return self._metadata


def _tensor_metadata(tensor: dict[str, Any]) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"]
    )


def repository_handlers(servicer: ThreadedServicer) -> dict[str, grpc.RpcMethodHandler]:
    """The repository extension's methods with Triton's messages (``repository_pb``).

    They replace KServe's load and unload, and add the index its service lacks.
    """
    return {
        "RepositoryIndex": grpc.unary_unary_rpc_method_handler(
            servicer.RepositoryIndex,
            request_deserializer=RepositoryIndexRequest.FromString,
            response_serializer=RepositoryIndexResponse.SerializeToString,
        ),
        "RepositoryModelLoad": grpc.unary_unary_rpc_method_handler(
            servicer.RepositoryModelLoad,
            request_deserializer=RepositoryModelRequest.FromString,
            response_serializer=pb.RepositoryModelLoadResponse.SerializeToString,
        ),
        "RepositoryModelUnload": grpc.unary_unary_rpc_method_handler(
            servicer.RepositoryModelUnload,
            request_deserializer=RepositoryModelRequest.FromString,
            response_serializer=pb.RepositoryModelUnloadResponse.SerializeToString,
        ),
    }


class PredictorGRPCServer(GRPCServer):  # type: ignore[misc]
    """KServe's gRPC server, made grpc's threaded server serving ``ThreadedServicer``.

    ``bind`` claims the port before anything is served (a port in use stops the start with one
    clear error, not a traceback once REST is up); ``start`` then serves until ``stop()``.
    """

    _server: grpc.Server | None

    def bind(self, max_workers: int, loop: asyncio.AbstractEventLoop) -> None:
        """Build the server on ``max_workers`` threads and claim its port.

        Raises:
            PortInUseError: the port cannot be bound (in use, or not ours to take).
        """
        servicer = PredictorServicer(self._data_plane, self._model_repository_extension)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
            options=[
                ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                (
                    "grpc.max_receive_message_length",
                    self._kwargs.get("grpc_max_receive_message_length"),
                ),
            ],
        )
        threaded = ThreadedServicer(servicer, loop)
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(threaded, self._server)
        self._server.add_registered_method_handlers(SERVICE, repository_handlers(threaded))
        try:
            self._server.add_insecure_port(f"[::]:{self._port}")
        except RuntimeError as e:
            self._server = None
            raise PortInUseError(
                f"cannot listen for gRPC on port {self._port}: in use or not available "
                "(choose another with --grpc_port, or --enable_grpc false)"
            ) from e
        self._max_workers = max_workers

    async def start(self, max_workers: int) -> None:
        """Serve on the port ``bind`` claimed (binding it now if it was not) until ``stop()``."""
        if self._server is None:
            self.bind(max_workers, asyncio.get_running_loop())
        assert self._server is not None  # bind() set it or raised
        self._stopped = asyncio.Event()
        self._server.start()
        logger.info("gRPC server listening on port %d (%d threads)", self._port, self._max_workers)
        try:
            await self._stopped.wait()
        finally:
            self._server.stop(None)  # at once if cancelled; a no-op after a graceful stop

    async def stop(self, sig: int | None = None) -> None:
        """Stop taking calls, let those in flight finish (up to the grace period), then return."""
        if self._server is None:
            return
        logger.info("Waiting for gRPC server shutdown")
        finished = self._server.stop(grace=self._grace_period)
        await asyncio.get_running_loop().run_in_executor(None, finished.wait)
        self._stopped.set()
        logger.info("gRPC server shutdown complete")
