"""The gRPC side of the server: KServe's gRPC server with our servicer and error mapping.

``PredictorServicer.ModelInfer`` answers our model directly (``SklearnModel.infer_grpc``),
counted and timed, and maps errors to statuses itself, as KServe's interceptor would; the
interceptor stays on every other method. Model metadata carries ``versions`` and ``platform``.
"""

from __future__ import annotations

import logging
from concurrent import futures
from typing import Any

import grpc
from grpc import aio
from kserve.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
)
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer

from predictor import metrics
from predictor.errors import OverloadedError
from predictor.model import SklearnModel

logger = logging.getLogger(__name__)


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
