"""Reliability under shutdown, overload, storage faults and hostile input, on real processes.

Covers: SIGTERM with hundreds of REST requests or gRPC calls in flight (every accepted one
answered correctly, exit 0), and with 300 sent but unread, with the defaults and with the shipped
settings (none lost); overload answered at once with 503 and Retry-After (REST) or
RESOURCE_EXHAUSTED (gRPC); GCS unreachable ending start-up within its deadline with one line; no credentials or request
values in logs and error bodies; and property-based fuzzing of the REST bodies (never a 5xx).
"""

from __future__ import annotations

import asyncio
import json
import signal
import string
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import joblib
import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from sklearn.ensemble import RandomForestClassifier

from tests.helpers import (
    REPO_ROOT,
    RunningServer,
    ServerFactory,
    free_port,
    infer_request,
    served_app,
    wait_until,
)

X = np.random.default_rng(0).normal(size=(400, 20))


@pytest.fixture(scope="module")
def forest_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("forest") / "forest.joblib"
    joblib.dump(
        RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0).fit(X, X[:, 0] > 0),
        path,
    )
    return path


def slow_server(server: ServerFactory, forest_file: Path, *extra: str) -> RunningServer:
    # scikit-learn's own predict (a few ms a call) and no batching: every request takes time.
    return server.start(
        str(forest_file), name="rf", args=["--fast_path", "false", "--batch_max_rows", "1", *extra]
    )


def flood_and_stop(
    running: RunningServer,
    *,
    at_first_answer: bool,
    during: Callable[[], Awaitable[None]] | None = None,
    requests: int = 300,
) -> list[Any]:
    """Send ``requests`` at once, SIGTERM, and say what became of each: ``(status, body)``,
    "not accepted" (the connection was refused) or "lost: ..." (made, then no answer).

    SIGTERM comes at the first answer, or 0.1 s after sending, when most requests are sent but
    not yet read; ``during`` runs once the signal is sent, while the server drains.
    """

    async def flood() -> list[Any]:
        limits = httpx.Limits(max_connections=requests, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=running.url, timeout=60, limits=limits) as client:

            async def one(i: int) -> Any:
                try:
                    reply = await client.post(
                        "/v1/models/rf:predict", json={"instances": [X[i].tolist()]}
                    )
                    return reply.status_code, reply.json()
                except httpx.ConnectError:
                    return "not accepted"
                except httpx.HTTPError as e:
                    return f"lost: {type(e).__name__}"

            tasks = [asyncio.create_task(one(i)) for i in range(requests)]
            if at_first_answer:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            else:
                await asyncio.sleep(0.1)
            running.process.send_signal(signal.SIGTERM)
            if during is not None:
                await during()
            return await asyncio.gather(*tasks)

    return asyncio.run(flood())


def test_sigterm_answers_every_accepted_request_and_exits_0(
    server: ServerFactory, forest_file: Path
) -> None:
    # The probe below waits its turn behind the requests already read (the model runs on the
    # event loop), which takes 3-5 s on an idle machine and more than 8 s on a busy one: the
    # drain must outlast that to answer it.
    running = slow_server(
        server, forest_file, "--max_in_flight", "1000", "--shutdown_delay_seconds", "20"
    )
    expected = joblib.load(forest_file).predict(X[:300]).tolist()

    async def probe_readiness() -> None:
        # On a connection of its own, as a kubelet probe comes: not one of the 300 in use.
        async with httpx.AsyncClient(base_url=running.url, timeout=15) as probe:
            ready = await until_not_ready(probe, "/v2/models/rf/ready")
        assert ready == 503  # draining: not ready, still serving

    outcomes = flood_and_stop(running, at_first_answer=True, during=probe_readiness)
    answered = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, tuple)]
    assert not [o for o in outcomes if isinstance(o, str) and o.startswith("lost")], outcomes
    assert len(answered) >= 100, f"only {len(answered)} requests were answered"
    for i, (status, body) in answered:
        assert status == 200, body
        assert body["predictions"] == [expected[i]]
    assert running.process.wait(timeout=60) == 0


def shipped_env() -> dict[str, str]:
    """The environment of the ServingRuntime in ``manifests/runtimes/base``."""
    runtime = yaml.safe_load(
        (REPO_ROOT / "manifests" / "runtimes" / "base" / "servingruntime.yaml").read_text()
    )
    return {e["name"]: e["value"] for e in runtime["spec"]["containers"][0].get("env", [])}


@pytest.mark.parametrize("config", ["defaults", "shipped"])
def test_sigterm_with_300_sent_and_unread_loses_none(
    server: ServerFactory, forest_file: Path, config: str
) -> None:
    """With the defaults (``python -m predictor``, ``docker run``) and the shipped settings.

    "Lost" is a request whose connection was made and that got no answer. uvicorn's own
    shutdown closed the connections it had accepted but not read: all 300 lost, by default.
    """
    env = shipped_env() if config == "shipped" else {}
    running = server.start(
        str(forest_file), name="rf", env=env, args=["--fast_path", "false", "--batch_max_rows", "1"]
    )
    expected = joblib.load(forest_file).predict(X[:300]).tolist()
    outcomes = flood_and_stop(running, at_first_answer=False)

    kinds = Counter(o[0] if isinstance(o, tuple) else o for o in outcomes)
    print(f"{config}: {dict(kinds)}")  # the figures docs/operations.md quotes
    assert not [o for o in outcomes if isinstance(o, str)], dict(kinds)
    for i, (status, body) in enumerate(outcomes):
        assert status in (200, 503), body
        if status == 200:
            assert body["predictions"] == [expected[i]]
        else:
            assert body["error"].startswith(("server overloaded", "model rf is not ready"))
    assert running.process.wait(timeout=60) == 0


def test_sigterm_answers_every_accepted_grpc_call_and_exits_0(
    server: ServerFactory, forest_file: Path
) -> None:
    # The drain outlasts the 300 calls (about 2-3 s of forest work on an idle machine, several
    # times that on a busy one): every call sent before or during it is answered. Calls still queued when grpc's own stop begins can be cancelled
    # by grpc, which is what the drain delay exists to avoid.
    running = slow_server(
        server, forest_file, "--max_in_flight", "1000", "--shutdown_delay_seconds", "12"
    )
    expected = joblib.load(forest_file).predict(X[:300]).tolist()

    async def flood() -> list[Any]:
        async with grpc.aio.insecure_channel(running.grpc_target) as channel:
            stub = GRPCInferenceServiceStub(channel)

            async def one(i: int) -> Any:
                try:
                    reply = await stub.ModelInfer(infer_request("rf", X[i : i + 1]), timeout=60)
                except grpc.aio.AioRpcError as e:
                    return e.code()
                return list(reply.outputs[0].contents.bool_contents)

            tasks = [asyncio.create_task(one(i)) for i in range(300)]
            # SIGTERM once the server is answering the flood: its first answer has come.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            running.process.send_signal(signal.SIGTERM)
            return await asyncio.gather(*tasks)

    outcomes = asyncio.run(flood())
    answered = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, list)]
    refused = [o for o in outcomes if not isinstance(o, list)]
    assert set(refused) <= {grpc.StatusCode.UNAVAILABLE}, refused  # not taken; never lost
    assert len(answered) >= 100, f"only {len(answered)} calls were answered"
    for i, labels in answered:
        assert labels == [expected[i]]
    assert running.process.wait(timeout=60) == 0


def test_overload_is_refused_at_once_with_retry_after(
    server: ServerFactory, forest_file: Path
) -> None:
    # A request is in flight from admission until answered. REST runs the model on the event
    # loop, so with batching off each request finishes before the next is read and nothing can
    # pile up; with batching on, requests wait together for the model. A 200 ms window holds
    # every request that arrives meanwhile, so 64 concurrent ones certainly meet the limit of 4.
    running = server.start(
        str(forest_file),
        name="rf",
        args=["--fast_path", "false", "--max_in_flight", "4", "--batch_max_wait_ms", "200"],
    )
    expected = joblib.load(forest_file).predict(X[:64]).tolist()

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=running.url, timeout=30, limits=limits) as client:
            return await asyncio.gather(
                *(
                    client.post("/v1/models/rf:predict", json={"instances": [X[i].tolist()]})
                    for i in range(64)
                )
            )

    replies = asyncio.run(burst())
    statuses = {r.status_code for r in replies}
    assert statuses <= {200, 503}
    refused = [r for r in replies if r.status_code == 503]
    assert refused, "nothing was refused although 64 requests met a limit of 4"
    assert refused[0].headers["retry-after"] == "1"
    assert refused[0].json()["error"].startswith("server overloaded:")
    for i, reply in enumerate(replies):
        if reply.status_code == 200:
            assert reply.json()["predictions"] == [expected[i]]
    assert (
        httpx.post(
            f"{running.url}/v1/models/rf:predict", json={"instances": [X[0].tolist()]}
        ).status_code
        == 200
    )


def test_grpc_overload_is_resource_exhausted(server: ServerFactory, forest_file: Path) -> None:
    # each request waits up to 50 ms for company in the batcher, so they pile up in flight
    running = server.start(
        str(forest_file),
        name="rf",
        args=["--fast_path", "false", "--max_in_flight", "1", "--batch_max_wait_ms", "50"],
    )
    request = pb.ModelInferRequest(
        model_name="rf",
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="x",
                datatype="FP64",
                shape=[1, 20],
                contents=pb.InferTensorContents(fp64_contents=X[0].tolist()),
            )
        ],
    )

    async def burst() -> list[Any]:
        async with grpc.aio.insecure_channel(running.grpc_target) as channel:
            stub = GRPCInferenceServiceStub(channel)

            async def one() -> Any:
                try:
                    await stub.ModelInfer(request)
                    return grpc.StatusCode.OK
                except grpc.aio.AioRpcError as e:
                    return e.code()

            return await asyncio.gather(*(one() for _ in range(40)))

    codes = asyncio.run(burst())
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes


def test_unreachable_gcs_ends_start_up_within_its_deadline(server: ServerFactory) -> None:
    started = time.monotonic()
    refused = server.run_to_exit(
        "gs://models/taxi/model.joblib",
        args=["--store_deadline_seconds", "3"],
        env={"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{free_port()}"},
        timeout=60,
    )
    assert refused.process.returncode == 2
    assert time.monotonic() - started < 30
    assert "gs://models/taxi/model.joblib: GCS still failing after retrying for 3s" in refused.log()
    assert "Traceback" not in refused.log()


def test_credentials_never_reach_the_logs(server: ServerFactory, tmp_path: Path) -> None:
    """A real service-account key is loaded and used, and its token exchange fails.

    No emulator: the client signs a token request with the key and sends it to a token
    endpoint on 127.0.0.1 that refuses, so the key is in the process when the errors are logged.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    key_lines = pem.splitlines()[1:-1]
    token_port = free_port()
    key = tmp_path / "key.json"
    key.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "predictor-tests",
                "private_key_id": "key-1",
                "private_key": pem,
                "client_email": "predictor@predictor-tests.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"http://127.0.0.1:{token_port}/token",
            }
        )
    )
    refused = server.run_to_exit(
        "gs://models/taxi/model.joblib",
        args=["--store_deadline_seconds", "2"],
        env={"GOOGLE_APPLICATION_CREDENTIALS": str(key)},
        timeout=60,
    )
    assert refused.process.returncode == 2
    log = refused.log()
    assert "gs://models/taxi/model.joblib: GCS still failing" in log
    assert f"port={token_port}" in log and "/token" in log  # the key was used to ask for a token
    assert not any(line in log for line in key_lines)
    assert "PRIVATE KEY" not in log


def test_request_values_are_not_echoed_in_errors_or_logs(
    server: ServerFactory, demo_model_dir: Path
) -> None:
    running = server.start(str(demo_model_dir), name="taxi")
    marker = "customer-4242-card-5555"
    replies = [
        httpx.post(f"{running.url}/v1/models/taxi:predict", json={"instances": [[1, marker, 3]]}),
        httpx.post(
            f"{running.url}/v1/models/taxi:predict",
            json={"instances": [{"pickup_zone": 1, marker: 2}]},
        ),
        httpx.post(
            f"{running.url}/v2/models/taxi/infer",
            json={
                "inputs": [
                    {"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, marker, 3]}
                ]
            },
        ),
    ]
    assert [r.status_code for r in replies] == [400, 400, 400]
    value, name, tensor_value = (r.text for r in replies)
    assert marker not in value and marker not in tensor_value  # values are never echoed
    # A column name the model does not take is named back to its caller, to fix the request.
    assert f"unknown feature(s) '{marker}'" in name
    assert marker not in running.log()


@pytest.fixture(scope="module")
def fuzz_client(demo_model_dir: Path) -> Iterator[TestClient]:
    with TestClient(
        served_app(str(demo_model_dir), name="taxi", max_body_bytes=1 << 16),
        raise_server_exceptions=False,
    ) as client:
        yield client


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    _nested,
    max_leaves=20,
)
TENSOR = st.fixed_dictionaries(
    {
        "name": st.text(max_size=5) | st.none(),
        "shape": st.lists(st.integers(-2, 70), max_size=3) | JSON,
        "datatype": st.sampled_from(["FP64", "FP32", "INT64", "BYTES", "BOOL", "FP16", "XX"])
        | JSON,
        "data": st.lists(
            st.integers() | st.floats(allow_nan=False) | st.text(max_size=3), max_size=12
        )
        | JSON,
    }
)


@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=JSON | st.fixed_dictionaries({"instances": JSON, "parameters": JSON}))
def test_fuzzed_v1_bodies_never_cause_a_5xx(fuzz_client: TestClient, body: Any) -> None:
    reply = fuzz_client.post("/v1/models/taxi:predict", content=json.dumps(body).encode())
    assert reply.status_code in (200, 400), reply.text
    assert set(reply.json()) in (
        {"error"},
        {"predictions", "model_version"},
        {"predictions", "predict", "model_version"},
    )


@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(inputs=st.lists(TENSOR, max_size=3) | JSON, outputs=JSON)
def test_fuzzed_v2_bodies_never_cause_a_5xx(
    fuzz_client: TestClient, inputs: Any, outputs: Any
) -> None:
    reply = fuzz_client.post(
        "/v2/models/taxi/infer", content=json.dumps({"inputs": inputs, "outputs": outputs}).encode()
    )
    assert reply.status_code in (200, 400), reply.text


@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    raw=st.binary(max_size=300),
    length=st.none() | st.text(alphabet=string.printable.strip(), max_size=6),
)
def test_fuzzed_raw_bytes_never_cause_a_5xx(
    fuzz_client: TestClient, raw: bytes, length: str | None
) -> None:
    headers = {"inference-header-content-length": length} if length is not None else {}
    for path in ("/v1/models/taxi:predict", "/v2/models/taxi/infer"):
        reply = fuzz_client.post(path, content=raw, headers=headers)
        assert reply.status_code in (200, 400), reply.text


def test_workers_die_with_a_killed_server(server: ServerFactory, demo_model_dir: Path) -> None:
    running = server.start(str(demo_model_dir), name="taxi", args=["--workers", "2"], timeout=60)
    workers = wait_until(
        lambda: found if len(found := running.children()) >= 2 else None,
        timeout=30,
        what="two uvicorn workers",
        every=0.2,
    )
    running.process.kill()  # SIGKILL: the server cannot stop its workers itself
    running.process.wait(timeout=10)
    wait_until(
        lambda: not [p for p in workers if Path(f"/proc/{p}").exists() and not zombie(p)],
        timeout=20,
        what="the workers to end with the server",
        every=0.2,
    )


async def until_not_ready(client: httpx.AsyncClient, path: str, timeout: float = 15) -> int:
    """The readiness status once it is no longer 200 (polled; fails loudly at ``timeout``)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (status := (await client.get(path)).status_code) == 200:
        assert asyncio.get_running_loop().time() < deadline, f"{path} stayed ready"
        await asyncio.sleep(0.02)
    return status


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False
