"""The load generators, pinned to core 1: wrk for REST (v1, v2), h2load for gRPC; one Cell each."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from servers import FEATURES, Server

LOAD_CORE = "1"


def _rows(rows: int) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(rows, FEATURES)).round(6)


def body(protocol: str, rows: int) -> str:
    data = _rows(rows)
    if protocol == "v1":
        return json.dumps({"instances": data.tolist()})
    return json.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [rows, FEATURES],
                    "datatype": "FP64",
                    "data": data.ravel().tolist(),
                }
            ]
        }
    )


@dataclass
class Cell:
    server: str
    model: str
    protocol: str
    rows: int
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rows_per_s(self) -> float:
        return self.rps * self.rows


def run_wrk(
    server: Server, protocol: str, rows: int, concurrency: int, duration: float, work: Path
) -> Cell:
    script = work / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body(protocol, rows))}\n"
    )
    path = (
        f"/v1/models/{server.model}:predict"
        if protocol == "v1"
        else f"/v2/models/{server.model}/infer"
    )
    result = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CORE,
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(int(round(duration)), 1)}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{server.http}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
    )
    out = result.stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"wrk failed: {result.stdout} {result.stderr}")
    rps = float(found.group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Cell(
        server.kind,
        server.model,
        protocol,
        rows,
        concurrency,
        rps,
        _latency(out, "50%"),
        _latency(out, "99%"),
        errors,
    )


def _latency(out: str, quantile: str) -> float:
    match = re.search(rf"^\s+{re.escape(quantile)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if not match:
        return float("nan")
    return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]


GRPC_PATH = "/inference.GRPCInferenceService/ModelInfer"


def run_grpc(server: Server, rows: int, concurrency: int, duration: float, work: Path) -> Cell:
    """Drive ``ModelInfer`` with h2load (gRPC is HTTP/2 POSTs of length-prefixed messages).

    h2load sees HTTP statuses only, and a gRPC error is HTTP 200 with an error status in its
    trailers and no message. So one call with the real gRPC client first checks the answer and
    gives the size of a good response; every request h2load counted whose response bytes are
    missing from the received data is counted as an error.
    """
    request = pb.ModelInferRequest(
        model_name=server.model,
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="input-0",
                datatype="FP64",
                shape=[rows, FEATURES],
                contents=pb.InferTensorContents(fp64_contents=_rows(rows).ravel().tolist()),
            )
        ],
    )
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc}") as channel:
        response = channel.unary_unary(
            GRPC_PATH,
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )(request, timeout=30)
    if len(response.outputs) != 1 or response.outputs[0].shape[0] != rows:
        raise RuntimeError(f"{server.kind} answered gRPC with {response}")
    good_size = 5 + response.ByteSize()
    message = request.SerializeToString()
    payload = work / f"grpc-{rows}.bin"
    payload.write_bytes(b"\0" + len(message).to_bytes(4, "big") + message)
    log = work / "h2load.log"
    log.unlink(missing_ok=True)  # h2load appends to its log file
    base = ["taskset", "-c", LOAD_CORE, "h2load", "-c1", f"-m{concurrency}", "-d", str(payload)]
    base += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    url = f"http://127.0.0.1:{server.grpc}{GRPC_PATH}"
    subprocess.run([*base, "-n200", url], capture_output=True, timeout=60, check=True)  # warm up
    result = subprocess.run(
        [*base, f"-D{max(int(round(duration)), 1)}", f"--log-file={log}", url],
        capture_output=True,
        text=True,
        timeout=duration + 60,
    )
    out = result.stdout
    found = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    data = re.search(r"traffic: .*?, .*?, .*\((\d+)\) data", out)
    if not (found and done and data):
        raise RuntimeError(f"h2load failed: {out} {result.stderr}")
    answered = int(data.group(1)) // good_size
    errors = int(done.group(1)) - min(answered, int(done.group(2)))
    durations = sorted(int(line.split()[-1]) for line in log.read_text().splitlines() if line)

    def pick(q: float) -> float:
        return durations[min(len(durations) - 1, int(q * len(durations)))] / 1000

    return Cell(
        server.kind,
        server.model,
        "grpc",
        rows,
        concurrency,
        float(found.group(1)),
        pick(0.50) if durations else float("nan"),
        pick(0.99) if durations else float("nan"),
        errors,
    )
