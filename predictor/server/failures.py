"""Errors to answers, in one place per transport: ``rest_error`` and ``grpc_status``.

Our errors carry their HTTP status and gRPC code (``predictor.errors``); KServe's own exceptions,
raised by KServe's routes and servicer, keep KServe's mapping. Anything else is a bug: it is
answered 500 / INTERNAL with a stable message and the request id, and logged under that id with
its traceback but without its message, which may hold a caller's values.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

import grpc
import orjson
from kserve import errors as kserve_errors
from starlette.requests import Request
from starlette.responses import Response

from predictor.errors import ClientGoneError, PredictorError
from predictor.protocol.tensors import new_id

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

# KServe's exceptions, as KServe's own REST handlers and gRPC interceptor answer them.
_KSERVE: tuple[tuple[tuple[type[BaseException], ...], int, grpc.StatusCode], ...] = (
    (
        (kserve_errors.InvalidInput, kserve_errors.InferenceError),
        400,
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    ((kserve_errors.UnsupportedProtocol,), 400, grpc.StatusCode.INVALID_ARGUMENT),
    ((kserve_errors.ModelNotFound,), 404, grpc.StatusCode.NOT_FOUND),
    (
        (kserve_errors.ModelNotReady, kserve_errors.ServerNotReady, kserve_errors.ServerNotLive),
        503,
        grpc.StatusCode.UNAVAILABLE,
    ),
    ((NotImplementedError,), 501, grpc.StatusCode.UNIMPLEMENTED),
)


def request_id(given: str | None) -> str:
    """The caller's request id when it is a plain token, else a new one."""
    return given if given is not None and _SAFE_ID.match(given) else new_id()


def unexpected_message(rid: str) -> str:
    """The stable text of every unexpected failure."""
    return f"internal server error; the server log has the details under request id {rid}"


def log_unexpected(error: BaseException, rid: str, what: str) -> None:
    """Log a bug with its traceback, but not its message (it may quote a caller's data)."""
    frames = "".join(traceback.format_tb(error.__traceback__))
    logger.error(
        "%s failed with %s (request id %s)\n%s", what, type(error).__qualname__, rid, frames
    )


def classify(error: BaseException) -> tuple[int, grpc.StatusCode, str] | None:
    """HTTP status, gRPC code and message of an expected error; None for a bug."""
    if isinstance(error, PredictorError):
        return error.http_status, grpc.StatusCode[error.grpc_code], str(error)
    for kinds, status, code in _KSERVE:
        if isinstance(error, kinds):
            return status, code, str(getattr(error, "reason", error))
    return None


def error_response(error: BaseException, given_id: str | None = None, what: str = "") -> Response:
    """The REST answer to ``error``, in the ``{"error": ...}`` shape of every error."""
    known = classify(error)
    headers = error.headers() if isinstance(error, PredictorError) else {}
    if known is None:
        rid = request_id(given_id)
        log_unexpected(error, rid, what or "request")
        status, message = 500, unexpected_message(rid)
        headers = {REQUEST_ID_HEADER: rid}
    else:
        status, _, message = known
        # Expected answers (a caller's mistake, overload, not ready): at DEBUG, or a readiness
        # probe while draining, or a burst of bad requests, would flood the log.
        logger.debug("%s answered %d: %s", what or "request", status, message)
    return Response(
        content=orjson.dumps({"error": message}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def rest_error(request: Request, error: Exception) -> Response:
    """The app's exception handler for our errors and for anything unexpected."""
    what = f"{request.method} {request.url.path}"
    return error_response(error, request.headers.get(REQUEST_ID_HEADER), what)


def grpc_status(
    error: BaseException, given_id: str | None = None, what: str = ""
) -> tuple[grpc.StatusCode, str]:
    """The status and detail a gRPC call that raised ``error`` is answered with."""
    known = classify(error)
    if known is None:
        rid = request_id(given_id or None)
        log_unexpected(error, rid, what or "gRPC call")
        return grpc.StatusCode.INTERNAL, unexpected_message(rid)
    _, code, message = known
    if not isinstance(error, ClientGoneError):
        logger.debug("%s refused: %s %s", what or "gRPC call", code.name, message)
    return code, message


def install(app: Any) -> None:
    """Register ``rest_error`` on ``app`` for our errors and in place of KServe's catch-all."""
    app.add_exception_handler(PredictorError, rest_error)
    app.add_exception_handler(Exception, rest_error)
