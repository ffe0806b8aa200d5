"""Test helpers: free ports, a real predictor process, an in-process app, gRPC requests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
from fastapi import FastAPI
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.model_repository_extension import ModelRepositoryExtension

from predictor.server.model import SklearnModel
from predictor.server.model_server import PredictorRESTServer, RestOptions, start_native_engines
from predictor.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


def infer_request(
    model: str,
    rows: Sequence[Sequence[float]] | np.ndarray,
    *,
    outputs: Sequence[str] = (),
    id: str = "",
) -> pb.ModelInferRequest:
    """A gRPC ModelInfer request with one FP64 ``[N, F]`` tensor of ``rows``."""
    return pb.ModelInferRequest(
        model_name=model,
        id=id,
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="x",
                datatype="FP64",
                shape=[len(rows), len(rows[0])],
                contents=pb.InferTensorContents(fp64_contents=[v for row in rows for v in row]),
            )
        ],
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=name) for name in outputs],
    )


def wait_until(
    condition: Callable[[], T | None | bool], *, timeout: float, what: str, every: float = 0.01
) -> T:
    """Poll ``condition`` until it returns something true; that value. Fails loudly at ``timeout``.

    A wait on what the test needs, never a fixed sleep: it returns as soon as the condition
    holds, and a condition that never holds fails the test naming ``what`` it waited for.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g}s for {what}; it did not happen")
        time.sleep(every)


def run_score(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m predictor score ARGS`` to its end, without the caller's PREDICTOR_* settings."""
    return _run_predictor("score", *args, env=env)


def run_publish(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m predictor publish ARGS`` to its end, without the caller's PREDICTOR_* settings."""
    return _run_predictor("publish", *args, env=env)


def _run_predictor(
    command: str, *args: str, env: dict[str, str] | None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTOR_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "predictor", command, *args],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    """One ``python -m predictor`` process and how to reach it."""

    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        try:
            found = (
                Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
                .read_text()
                .split()
            )
        except OSError:
            return []
        return [int(pid) for pid in found]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode


@dataclass
class ServerFactory:
    """Starts predictor processes for one test and stops them all afterwards."""

    tmp_path: Path
    running: list[RunningServer] = field(default_factory=list)

    def spawn(
        self,
        model_uri: str | None,
        *,
        name: str = "model",
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        argv: Sequence[str] | None = None,
    ) -> RunningServer:
        """Start a process without waiting for it.

        ``argv``: the whole command line instead of ours, ``{http_port}`` and ``{grpc_port}``
        in it filled with the free ports found here.
        """
        http_port, grpc_port = free_port(), free_port()
        log_path = self.tmp_path / f"server-{len(self.running)}.log"
        given = (
            [
                a.replace("{http_port}", str(http_port)).replace("{grpc_port}", str(grpc_port))
                for a in argv
            ]
            if argv is not None
            else None
        )
        command = (
            [sys.executable, "-m", "predictor", *given]
            if given is not None
            else [
                sys.executable,
                "-m",
                "predictor",
                "--model_name",
                name,
                "--http_port",
                str(http_port),
                "--grpc_port",
                str(grpc_port),
                *(["--model_uri", model_uri] if model_uri is not None else []),
                *args,
            ]
        )
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTOR_")}
        full_env.update(env or {})
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT
            )
        server = RunningServer(process, http_port, grpc_port, log_path)
        self.running.append(server)
        return server

    def start(
        self, model_uri: str | None, *, timeout: float = 30.0, **kwargs: object
    ) -> RunningServer:
        """Start a process and wait until its model is ready; fail with its log if it is not.

        A port found free can be taken by another process before the server binds it (the other
        test worker's servers and clients draw from the same ephemeral range): a server that
        exits saying so is started again on other ports, twice at most.
        """
        for attempt in range(3):
            server = self.spawn(model_uri, **kwargs)  # type: ignore[arg-type]
            try:
                return self.ready(server, timeout=timeout)
            except AssertionError:
                lost_port = (
                    server.process.poll() is not None and "cannot listen for" in server.log()
                )
                if not lost_port or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def ready(self, server: RunningServer, *, timeout: float = 30.0) -> RunningServer:
        """Wait until a spawned process's model is ready; fail with its log if it is not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise AssertionError(
                    f"server exited with {server.process.returncode}:\n{server.log()[-3000:]}"
                )
            try:
                response = httpx.get(f"{server.url}/v2/health/ready", timeout=1.0)
                if response.status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout}s:\n{server.log()[-3000:]}")

    def run_to_exit(
        self, model_uri: str | None, *, timeout: float = 60.0, **kwargs: object
    ) -> RunningServer:
        """Start a process that is expected to exit on its own (a refused model)."""
        server = self.spawn(model_uri, **kwargs)  # type: ignore[arg-type]
        try:
            server.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"server still running after {timeout}s:\n{server.log()}") from e
        return server

    def stop_all(self) -> None:
        for server in self.running:
            server.stop()


def in_process_app(
    model_uri: str, *, name: str = "model", max_body_bytes: int = 1 << 20
) -> FastAPI:
    """A fresh FastAPI app wired exactly as the server wires KServe's, with the model loaded."""
    return _wired(model_uri, name=name, max_body_bytes=max_body_bytes)[1]


def served_app(model_uri: str, *, name: str = "model", max_body_bytes: int = 1 << 20) -> Any:
    """The ASGI app exactly as uvicorn serves it: the front door before ``in_process_app``."""
    rest, app = _wired(model_uri, name=name, max_body_bytes=max_body_bytes)
    return rest.served(app, handlers=app.exception_handlers)


def await_native_engines(timeout: float = 120.0) -> None:
    """Wait for every background conversion to the native engine to end.

    They convert under ``warnings.catch_warnings``, which swaps the process's filters and is
    not thread-safe: one running while a later test's FastAPI builds routes (FastAPI silences a
    pydantic warning the same way) can restore filters under it, and pytest's "error" filter
    turns that warning into a failure.
    """
    for thread in threading.enumerate():
        if thread.name.startswith("native-engine-"):
            thread.join(timeout)


def _wired(
    model_uri: str, *, name: str, max_body_bytes: int
) -> tuple[PredictorRESTServer, FastAPI]:
    model = SklearnModel(
        name, settings=Settings(model_uri=model_uri, max_body_bytes=max_body_bytes)
    )
    model.load()
    registry = ModelRepository()
    registry.update(model)
    dataplane = DataPlane(model_registry=registry)
    rest = PredictorRESTServer(
        "kserve.model_server:app",
        dataplane,
        ModelRepositoryExtension(model_registry=registry),
        0,
        options=RestOptions(max_body_bytes=max_body_bytes),
    )
    app = FastAPI()
    rest.configure_app(app)
    start_native_engines(registry)  # as the server does once its app is built
    await_native_engines()
    return rest, app
