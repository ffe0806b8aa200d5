"""gRPC methods other than our ModelInfer run KServe's coroutines on the server's event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from predictor.server import grpc_server
from predictor.server.grpc_server import PredictorServicer, ThreadedServicer


class AbortedError(Exception):
    """What the fake context raises, as grpc's does, when a call is aborted."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code, self.details = code, details


class FakeContext:
    def invocation_metadata(self) -> list[Any]:
        return []

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AbortedError(code, details)


def threaded_servicer(loop: asyncio.AbstractEventLoop) -> ThreadedServicer:
    return ThreadedServicer(PredictorServicer(DataPlane(ModelRepository()), None), loop)


@pytest.fixture
def running_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


def test_other_methods_are_answered_by_kserve_on_the_loop(
    running_loop: asyncio.AbstractEventLoop,
) -> None:
    servicer = threaded_servicer(running_loop)
    assert servicer.ServerLive(pb.ServerLiveRequest(), FakeContext()).live is True
    with pytest.raises(AbortedError) as aborted:
        servicer.ModelReady(pb.ModelReadyRequest(name="missing"), FakeContext())
    assert aborted.value.code == grpc.StatusCode.NOT_FOUND


def test_a_call_waiting_on_a_loop_that_no_longer_runs_is_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(grpc_server, "LOOP_CHECK_SECONDS", 0.05)
    loop = asyncio.new_event_loop()  # never run: as after a start that failed
    try:
        with pytest.raises(AbortedError) as aborted:
            threaded_servicer(loop).ServerLive(pb.ServerLiveRequest(), FakeContext())
    finally:
        loop.close()
    assert aborted.value.code == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in aborted.value.details
