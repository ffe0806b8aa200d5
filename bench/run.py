"""The benchmark: each server pinned to core 0, load from core 1 over 127.0.0.1, ratios in one run.

Servers: ``baseline`` (a plain kserve.Model, bench/baseline.py), ``predictor`` (ours, serving a
bundle with a pinned digest and an acceptance set, so cold start includes every check),
``mlserver`` (MLServer's sklearn runtime in-process) and ``mlserver-batch`` (with adaptive
batching), when MLServer is installed in bench/.venv-mlserver (``make bench`` does that).
Load: wrk for REST (v1, v2) and h2load (nghttp2) for gRPC, both load generators in C. Cells:
LogisticRegression and RandomForest(100 trees, depth 12) on 20 features; 1 and 64 rows;
concurrency 1 and 32. All servers of a model run at once (idle but for the one under load) and
take turns, ``--rounds`` samples each per cell; the table shows each server's median.

    python bench/run.py [--duration 4] [--rounds 3] [--quick] [--servers baseline,predictor]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import httpx
import joblib
import numpy as np
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
MLSERVER = ROOT / "bench" / ".venv-mlserver" / "bin" / "mlserver"
FEATURES = 20
SERVER_CORE, LOAD_CORE = "0", "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_models(folder: Path) -> dict[str, Path]:
    """LogisticRegression and RandomForest(100, depth 12) on 20 features, as bare files and bundles."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, FEATURES))
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] + rng.normal(scale=0.5, size=5000) > 0).astype(int)
    models = {
        "lr": LogisticRegression(max_iter=500).fit(x, y),
        "rf": RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0).fit(x, y),
    }
    sys.path.insert(0, str(ROOT))
    from predictor.publish import BundleSpec, publish

    paths = {}
    for name, model in models.items():
        bare = folder / name / "bare"
        bare.mkdir(parents=True)
        joblib.dump(model, bare / "model.joblib")
        golden = folder / name / "e2e.json"
        golden.write_text(json.dumps({"instances": x[:20].tolist()}))
        bundle = publish(
            BundleSpec(
                model_file=bare / "model.joblib",
                name=name,
                version="1.0.0",
                created_by="bench",
                e2e_file=golden,
            ),
            str(folder / name / "registry"),
        )
        paths[name] = bare
        paths[f"{name}-bundle"] = Path(bundle)
    return paths


@dataclass
class Server:
    kind: str
    model: str
    process: subprocess.Popen[bytes]
    http: int
    grpc: int
    cold_start_s: float

    def rss_mb(self) -> float:
        total = 0
        pids = [self.process.pid] + _children(self.process.pid)
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def cpu_seconds(self) -> float:
        total = 0
        for pid in [self.process.pid] + _children(self.process.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
        return total / os.sysconf("SC_CLK_TCK")

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until the server stopped working off requests a finished load left queued.

        Otherwise its backlog would run on the core while the next server is measured.
        """
        deadline = time.monotonic() + timeout
        before = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.cpu_seconds()
            if now - before < 0.01:
                return
            before = now

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    pids = [int(p) for p in found]
    return pids + [c for p in pids for c in _children(p)]


def start_server(kind: str, model: str, paths: dict[str, Path], work: Path) -> Server:
    http, grpc = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTOR_")}
    if kind == "baseline":
        command = [
            sys.executable,
            "bench/baseline.py",
            "--model_name",
            model,
            "--model_dir",
            str(paths[model]),
        ]
        command += ["--http_port", str(http), "--grpc_port", str(grpc)]
    elif kind == "predictor":
        bundle = paths[f"{model}-bundle"]
        digest = json.loads((bundle / "model.json").read_text())["artifact"]["sha256"]
        env["PREDICTOR_MODEL_SHA256"] = digest
        command = [
            sys.executable,
            "-m",
            "predictor",
            "--model_name",
            model,
            "--model_uri",
            str(bundle),
        ]
        command += ["--http_port", str(http), "--grpc_port", str(grpc)]
    else:
        folder = work / f"{kind}-{model}"
        (folder / model).mkdir(parents=True, exist_ok=True)
        settings = {
            "http_port": http,
            "grpc_port": grpc,
            "metrics_port": free_port(),
            "parallel_workers": 0,
        }
        (folder / "settings.json").write_text(json.dumps(settings))
        model_settings: dict[str, Any] = {
            "name": model,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(paths[model] / "model.joblib"), "version": "v1"},
        }
        if kind == "mlserver-batch":
            model_settings |= {"max_batch_size": 64, "max_batch_time": 0.002}
        (folder / model / "model-settings.json").write_text(json.dumps(model_settings))
        command = [str(MLSERVER), "start", str(folder)]
    log = (work / f"{kind}-{model}.log").open("wb")
    started = time.perf_counter()
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, *command],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = started + 120
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{kind} exited: see {log.name}")
        try:
            if (
                httpx.get(f"http://127.0.0.1:{http}/v2/models/{model}/ready", timeout=1).status_code
                == 200
            ):
                return Server(kind, model, process, http, grpc, time.perf_counter() - started)
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    process.kill()
    raise RuntimeError(f"{kind} did not become ready")


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


def cold_start(kind: str, model: str, paths: dict[str, Path], work: Path) -> float:
    """Seconds from starting ``kind`` to its model answering ready."""
    server = start_server(kind, model, paths, work)
    server.stop()
    return server.cold_start_s


def measure_cell(
    running: list[Server], spec: tuple[str, int, int], duration: float, rounds: int, work: Path
) -> list[Cell]:
    """One cell for every server, measured ``rounds`` times in turn; each server's median.

    The servers take turns on the same core, so a slow spell of the machine touches all of
    them rather than one; the sample with the median throughput stands for the server (its
    latencies with it), and errors are added up over all samples.
    """
    protocol, rows, concurrency = spec
    seconds = duration if concurrency > 1 else max(duration / 2, 2)
    samples: dict[str, list[Cell]] = {}
    for _ in range(rounds):
        for server in running:
            if protocol == "v1" and server.kind.startswith("mlserver"):
                continue  # MLServer speaks v2 only
            if protocol == "grpc":
                cell = run_grpc(server, rows, concurrency, seconds, work)
            else:
                cell = run_wrk(server, protocol, rows, concurrency, seconds, work)
            server.wait_idle()
            samples.setdefault(server.kind, []).append(cell)
            print(json.dumps(asdict(cell)), flush=True)
    medians = []
    for cells in samples.values():
        middle = sorted(cells, key=lambda c: c.rps)[len(cells) // 2]
        medians.append(replace(middle, errors=sum(c.errors for c in cells)))
    return medians


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import kserve
    import sklearn

    return (
        f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}, "
        f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, kserve {kserve.__version__ if hasattr(kserve, '__version__') else '0.21.0'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per c=32 sample")
    parser.add_argument("--rounds", type=int, default=3, help="samples per cell and server")
    parser.add_argument("--servers", default="baseline,predictor,mlserver,mlserver-batch")
    parser.add_argument("--models", default="lr,rf")
    parser.add_argument("--quick", action="store_true", help="only the cells the targets name")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = parser.parse_args()
    for tool in ("taskset", "wrk", "h2load"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (make bench installs it)")
    servers = [s for s in args.servers.split(",") if s]
    if not MLSERVER.exists():
        servers = [s for s in servers if not s.startswith("mlserver")]
        print(
            "MLServer is not installed in bench/.venv-mlserver; skipping its cells", file=sys.stderr
        )
    cells_spec = [
        (protocol, rows, concurrency)
        for protocol in ("v1", "v2", "grpc")
        for rows in (1, 64)
        for concurrency in (1, 32)
    ]
    if args.quick:
        cells_spec = [(p, rows, 32) for p in ("v1", "v2", "grpc") for rows in (1, 64)]
        cells_spec += [("v2", 1, 1), ("grpc", 1, 1)]
    results: list[Cell] = []
    starts: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        paths = make_models(work / "models")
        for model in args.models.split(","):
            found = starts.setdefault(model, {})
            timings: dict[str, list[float]] = {kind: [] for kind in servers}
            for _ in range(args.rounds):  # cold starts: servers alternate, each alone on its core
                for kind in servers:
                    timings[kind].append(cold_start(kind, model, paths, work))
            for kind, seconds in timings.items():
                found[kind] = statistics.median(seconds)
            running = [start_server(kind, model, paths, work) for kind in servers]
            try:
                for spec in cells_spec:
                    results += measure_cell(running, spec, args.duration, args.rounds, work)
                for server in running:
                    found[f"{server.kind}_rss_mb"] = server.rss_mb()
            finally:
                for server in running:
                    server.stop()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {"machine": machine(), "cells": [asdict(c) for c in results], "starts": starts},
            indent=1,
        )
    )
    print(render(results, starts, machine()))


def render(results: list[Cell], starts: dict[str, dict[str, float]], where: str) -> str:
    """The results table, ratios against the baseline (and MLServer with batching) of the same run."""
    by_key = {(c.server, c.model, c.protocol, c.rows, c.concurrency): c for c in results}
    lines = [
        f"Machine: {where}",
        "",
        "| model | proto | rows | c | baseline req/s | predictor req/s | x baseline | mlserver-batch req/s | x mlserver-batch | p50 ms (base / ours) | p99 ms (base / ours) | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (server, model, protocol, rows, concurrency), ours in sorted(by_key.items()):
        if server != "predictor":
            continue
        base = by_key.get(("baseline", model, protocol, rows, concurrency))
        mls = by_key.get(("mlserver-batch", model, protocol, rows, concurrency))
        ratio = f"{ours.rps / base.rps:.2f}x" if base and base.rps else "n/a"
        mratio = f"{ours.rps / mls.rps:.2f}x" if mls and mls.rps else "n/a"
        lines.append(
            f"| {model} | {protocol} | {rows} | {concurrency} | {base.rps if base else float('nan'):,.0f} | {ours.rps:,.0f} | {ratio} | "
            f"{mls.rps if mls else float('nan'):,.0f} | {mratio} | {base.p50_ms if base else float('nan'):.2f} / {ours.p50_ms:.2f} | "
            f"{base.p99_ms if base else float('nan'):.2f} / {ours.p99_ms:.2f} | {ours.errors + (base.errors if base else 0)} |"
        )
    lines += ["", "| model | server | cold start to ready (s) | RSS (MB) |", "|---|---|---|---|"]
    for model, found in sorted(starts.items()):
        for kind in ("baseline", "predictor", "mlserver", "mlserver-batch"):
            if kind in found:
                lines.append(
                    f"| {model} | {kind} | {found[kind]:.2f} | {found.get(f'{kind}_rss_mb', float('nan')):.0f} |"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
