"""The servers the benchmark compares: the models they serve, and starting them pinned to core 0.

``empty`` answers without a model on the same transport stack (bench/empty.py: the ceiling);
``baseline`` is a plain kserve.Model (bench/baseline.py); ``predictor`` is ours, serving a bundle
with a pinned digest and an acceptance set, so its cold start includes every check;
``mlserver`` and ``mlserver-batch`` are MLServer's sklearn runtime, without and with adaptive
batching, when MLServer is installed in bench/.venv-mlserver. ``predictor@REF`` is ours as of
git commit REF (for A/B runs, ``bench/ab.py``); ``predictor+shadow`` is ours with the same model
as its shadow (``bench/ab.py --old-kind predictor --new predictor+shadow``);
``predictor+repository`` serves the same bundle as the one model of a model repository;
``predictor+nodrift`` serves it with drift off (the bundles carry a drift reference).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
MLSERVER = ROOT / "bench" / ".venv-mlserver" / "bin" / "mlserver"
FEATURES = 20
SERVER_CORE = "0"


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
    from predictor.publishing.publish import BundleSpec, publish

    paths = {}
    for name, model in models.items():
        bare = folder / name / "bare"
        bare.mkdir(parents=True)
        joblib.dump(model, bare / "model.joblib")
        golden = folder / name / "e2e.json"
        golden.write_text(json.dumps({"instances": x[:20].tolist()}))
        sample = folder / name / "sample.csv"  # the bundle's drift reference
        header = ",".join(f"x{i}" for i in range(FEATURES))
        np.savetxt(sample, x[:2000], delimiter=",", header=header, comments="")
        bundle = publish(
            BundleSpec(
                model_file=bare / "model.joblib",
                name=name,
                version="1.0.0",
                created_by="bench",
                e2e_file=golden,
                sample_file=sample,
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


def start_server(
    kind: str, model: str, paths: dict[str, Path], work: Path, *, bare: bool = False
) -> Server:
    """Start one server; ``bare``: ours serves the bare model file, not its bundle (old commits
    may refuse bundles written by newer code)."""
    http, grpc = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTOR_")}
    if kind == "empty":  # the transport's ceiling: no model at all (bench/empty.py)
        command = [sys.executable, "bench/empty.py", "--model_name", model]
        command += ["--http_port", str(http), "--grpc_port", str(grpc)]
    elif kind == "baseline":
        command = [
            sys.executable,
            "bench/baseline.py",
            "--model_name",
            model,
            "--model_dir",
            str(paths[model]),
        ]
        command += ["--http_port", str(http), "--grpc_port", str(grpc)]
    elif kind == "predictor+repository":  # the same bundle, as one model of a repository
        repository = work / f"repository-{model}"
        if not repository.exists():
            shutil.copytree(paths[f"{model}-bundle"], repository / model)
        command = [sys.executable, "-m", "predictor", "--model_repository", str(repository)]
        command += ["--preload", model, "--http_port", str(http), "--grpc_port", str(grpc)]
    elif kind in ("predictor", "predictor+shadow", "predictor+nodrift") or kind.startswith(
        "predictor@"
    ):
        bundle = paths[model] if bare else paths[f"{model}-bundle"]
        if not bare:
            digest = json.loads((bundle / "model.json").read_text())["artifact"]["sha256"]
            env["PREDICTOR_MODEL_SHA256"] = digest
        if kind == "predictor+nodrift":  # drift off: what watching the features costs
            env["PREDICTOR_DRIFT_WINDOW_ROWS"] = "0"
        if kind == "predictor+shadow":  # the same model again, as its own shadow
            env["PREDICTOR_SHADOW_MODEL_URI"] = str(paths[model] / "model.joblib")
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
        cwd=source_of(kind, work),
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


def source_of(kind: str, work: Path) -> Path:
    """Where the server's code comes from: this checkout, or for ``predictor@REF`` that commit.

    ``python -m`` puts the working folder first on the import path, so a copy of the commit's
    tree (``git archive``) runs with this virtualenv's dependencies.
    """
    if "@" not in kind:
        return ROOT
    ref = kind.split("@", 1)[1]
    tree = work / f"src-{ref}"
    if not tree.exists():
        tree.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", ref], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def cold_start(kind: str, model: str, paths: dict[str, Path], work: Path) -> float:
    """Seconds from starting ``kind`` to its model answering ready."""
    server = start_server(kind, model, paths, work)
    server.stop()
    return server.cold_start_s
