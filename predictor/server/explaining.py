"""``:explain`` off the prediction path: worker processes of its own, at a lower priority.

An explanation can cost thousands of model calls per row, and shap's tree code holds the GIL
while it runs: on threads beside the server, a flood of explanations would stall predictions.
So explanations run in ``PREDICTOR_EXPLAIN_MAX_IN_FLIGHT`` worker processes, started on the
first explanation (a model never asked pays nothing) from a pickled copy of the model's
``Explanations``, at the lowest CPU priority, so the kernel gives the serving process the CPU
first. One more
explanation than there are workers is refused at once with a 503 and ``Retry-After``, not
queued. Each worker holds a copy of the model: mind the memory of large forests. A linear
model's explanation costs what a prediction costs, and is answered on the request path.

``Explaining`` is what a served model holds: the default version's explanations and the
workers, for v1 ``:explain`` and for v2 requests (REST and gRPC) that ask for explanation
outputs.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.infer_type import InferRequest

from predictor.errors import (
    ExplainBusyError,
    ExplainUnavailableError,
    ExplainWorkerLostError,
    ModelNotReadyError,
)
from predictor.explain.plan import LINEAR
from predictor.explain.service import Explanations, explanations_for
from predictor.protocol.v2_rest import parse_json
from predictor.sections import Explain
from predictor.server.explain_answers import explain_grpc, explain_v2_json

NICENESS = 19
"""The explain workers' CPU priority, the lowest (``os.nice``): they get what serving leaves."""

_WORKER: Explanations | None = None
"""In a worker process: the explanations it answers with."""


def _start_worker(explanations: bytes, path: list[str]) -> None:
    global _WORKER
    os.nice(NICENESS)
    sys.path[:] = path  # a bundle's own modules, as the server found them
    _WORKER = pickle.loads(explanations)  # noqa: S301 - our own model, pickled by the server


def _answer(kind: str, request: Any, name: str, version: str) -> Any:
    """In a worker process: one explanation answer (v1 body, v2 request or gRPC message)."""
    assert _WORKER is not None
    return _answer_with(_WORKER, kind, request, name, version)


def _answer_with(
    explanations: Explanations, kind: str, request: Any, name: str, version: str
) -> Any:
    """One answer: a v1 body's bytes, a v2 InferRequest, or a gRPC message's bytes."""
    if kind == "v1":
        return explanations.explain_v1(parse_json(request), version)
    if kind == "v2":
        return explain_v2_json(explanations, request, model_name=name, version=version)
    message = pb.ModelInferRequest.FromString(request)  # protobuf messages travel as bytes
    return explain_grpc(explanations, message, model_name=name, version=version).SerializeToString()


class Explaining:
    """The explanations of one served model's default version, in worker processes."""

    def __init__(self, name: str, bounds: Explain) -> None:
        self.name = name
        self.bounds = bounds
        self.explanations: Explanations | None = None
        self.version = ""
        self._running = 0
        self._lock = threading.Lock()
        self._starting = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Sent to uvicorn worker processes before serving; each starts its own workers.
        state = dict(self.__dict__)
        state.update(_running=0, _lock=None, _starting=None, _pool=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock(), _starting=threading.Lock())

    def load(self, loaded: Any) -> None:
        """Explain ``loaded`` (the default version), from now on."""
        self.explanations = explanations_for(loaded, self.bounds)
        self.version = loaded.version

    def describe(self) -> dict[str, Any] | None:
        """How ``:explain`` answers (method, output, exactness), or why it cannot."""
        return self.explanations.describe() if self.explanations is not None else None

    async def v1(self, body: bytes) -> dict[str, Any]:
        """The answer to a v1 ``:explain`` body (its bytes: a worker parses them)."""
        result: dict[str, Any] = await self._run("v1", body, None)
        return result

    async def v2_rest(self, request: InferRequest, version: str | None) -> dict[str, Any]:
        """The v2 REST document for a request that asks for explanation outputs."""
        result: dict[str, Any] = await self._run("v2", request, version)
        return result

    def grpc(self, message: pb.ModelInferRequest) -> pb.ModelInferResponse:
        """The gRPC response for a message that asks for explanation outputs."""
        explanations, request = self._for(None), message.SerializeToString()
        if explanations.ready_plan().method == LINEAR:
            answer = _answer_with(explanations, "grpc", request, self.name, self.version)
            return pb.ModelInferResponse.FromString(answer)
        self._take()
        try:
            answer = self._hand(explanations, "grpc", request).result()
        except BrokenProcessPool:
            raise self._lost() from None
        finally:
            self._give_back()
        return pb.ModelInferResponse.FromString(answer)

    def stop(self) -> None:
        """Stop the worker processes (the server is shutting down)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def _run(self, kind: str, request: Any, version: str | None) -> Any:
        explanations = self._for(version)
        if explanations.ready_plan().method == LINEAR:  # as cheap as a prediction: right here
            return _answer_with(explanations, kind, request, self.name, self.version)
        self._take()
        try:
            # Handing work over may start a worker, which reads the pickled model from a pipe
            # at its low priority: the writing end must not be the event loop.
            future = await asyncio.to_thread(self._hand, explanations, kind, request)
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            raise self._lost() from None
        finally:
            self._give_back()

    def _lost(self) -> ExplainWorkerLostError:
        """A worker died: the pool is broken for good, so the next explanation starts anew."""
        with self._starting:
            self.stop()
        return ExplainWorkerLostError()

    def _take(self) -> None:
        """Count one explanation in; refused at once (503) when every worker is busy."""
        with self._lock:
            if self._running >= self.bounds.max_in_flight:
                raise ExplainBusyError(self.bounds.max_in_flight)
            self._running += 1

    def _hand(self, explanations: Explanations, kind: str, request: Any) -> Future[Any]:
        """Give one explanation to a worker process (starting the pool on the first)."""
        with self._starting:
            pool = self._pool or self._start(explanations)
        return pool.submit(_answer, kind, request, self.name, self.version)

    def _start(self, explanations: Explanations) -> ProcessPoolExecutor:
        self._pool = ProcessPoolExecutor(
            self.bounds.max_in_flight,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(pickle.dumps(explanations), list(sys.path)),
        )
        return self._pool

    def _give_back(self) -> None:
        with self._lock:
            self._running -= 1

    def _for(self, version: str | None) -> Explanations:
        if self.explanations is None:
            raise ModelNotReadyError(self.name)
        if version is not None and version != self.version:
            raise ExplainUnavailableError(
                f"explanations are given for the default version {self.version} only"
            )
        return self.explanations
