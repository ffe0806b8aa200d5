"""Many models per process: cold loads, and a sweep over 1,000 models within a budget.

    python bench/repository.py [--models 1000] [--budget 20] [--requests 6000] [--clients 8]

1. **Cold load to the first answer.** The bench's models (LogisticRegression, and the forest:
   RandomForest(100, depth 12), 20 features) as bundles in a repository, served by the predictor
   pinned to core 0. Each is asked once cold (its load: fetch, digest checks, unpickling, the
   acceptance set, the engine's checks, then the answer) and then warm; the model is unloaded
   between rounds. Median over rounds.
2. **The sweeps.** ``--models`` small classifiers (each its own LogisticRegression on 20
   features, trained on its own data) within a budget of ``--budget`` loaded models; then
   ``--forests`` forests (30 trees of depth 8 each) within ``--memory_mb``. ``--requests`` v2
   requests of 4 rows each, in a random order, from ``--clients`` client threads (core 1). Every answer
   must equal scikit-learn's for the model it names, or be the documented 503 (with
   ``Retry-After``) while room cannot be made; anything else is counted as lost or wrong. The
   server's resident memory is sampled every 0.2 s: its peak, against the process before any
   model and the budget's own measure of the models held (``predictor_repository_bytes_loaded``);
   and its slope over the run's second half (MiB per 1,000 loads: a leak would show here).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import joblib
import numpy as np
from servers import FEATURES, ROOT, SERVER_CORE, Server, free_port, make_models
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(ROOT))

CLIENT_CORE = "1"


def start(repository: Path, work: Path, *args: str) -> Server:
    """The predictor serving ``repository``, pinned to the server's core, once it is ready."""
    http, grpc = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTOR_")}
    command = ["taskset", "-c", SERVER_CORE, sys.executable, "-m", "predictor"]
    command += ["--model_repository", str(repository), "--http_port", str(http)]
    command += ["--grpc_port", str(grpc), *args]
    log = (work / "server.log").open("wb")
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    while time.perf_counter() < started + 60:
        try:
            if httpx.get(f"http://127.0.0.1:{http}/v2/health/ready", timeout=1).status_code == 200:
                return Server("predictor", "", process, http, grpc, time.perf_counter() - started)
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"the server did not start: see {log.name}")


def v2(rows: np.ndarray) -> dict[str, object]:
    return {
        "inputs": [
            {
                "name": "x",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.ravel().tolist(),
            }
        ]
    }


def gauge(server: Server, name: str) -> float:
    for line in httpx.get(f"http://127.0.0.1:{server.http}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def cold_loads(work: Path, rounds: int) -> dict[str, tuple[float, float]]:
    """Median (cold, warm) milliseconds to the first answer, per bench model."""
    paths = make_models(work / "models")
    repository = work / "bench-repository"
    for name in ("lr", "rf"):
        shutil.copytree(paths[f"{name}-bundle"], repository / name)
    server = start(repository, work)
    rows = np.random.default_rng(1).normal(size=(1, FEATURES))
    found: dict[str, tuple[float, float]] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.http}", timeout=120) as client:
            for name in ("lr", "rf"):
                cold: list[float] = []
                warm: list[float] = []
                for _ in range(rounds):
                    for sample in (cold, warm):
                        started = time.perf_counter()
                        client.post(f"/v2/models/{name}/infer", json=v2(rows)).raise_for_status()
                        sample.append((time.perf_counter() - started) * 1e3)
                    client.post(f"/v2/repository/models/{name}/unload").raise_for_status()
                found[name] = (statistics.median(cold), statistics.median(warm))
    finally:
        server.stop()
    return found


def small_model(i: int, forest: bool) -> object:
    """Model ``i`` of the sweep: a LogisticRegression, or a forest of 30 trees of depth 8."""
    rng = np.random.default_rng(1000 + i)
    x = rng.normal(size=(2000 if forest else 200, FEATURES))
    y = (x @ rng.normal(size=FEATURES) > 0).astype(int)
    if forest:
        return RandomForestClassifier(n_estimators=30, max_depth=8, random_state=i).fit(x, y)
    return LogisticRegression().fit(x, y)


def sweep(
    work: Path, count: int, budget: list[str], requests: int, clients: int, *, forest: bool
) -> dict[str, object]:
    """Random requests over ``count`` models within ``budget`` (flags); what happened."""
    repository = work / f"sweep-{'forests' if forest else 'small'}"
    probe = np.random.default_rng(5).normal(size=(4, FEATURES))
    expected = {}
    for i in range(count):
        model = small_model(i, forest)
        name = f"m{i:04d}"
        (repository / name).mkdir(parents=True)
        joblib.dump(model, repository / name / "model.joblib")
        expected[name] = model.predict(probe).tolist()  # type: ignore[attr-defined]
    server = start(repository, work, *budget)
    base_mb = server.rss_mb()
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample_rss() -> None:
        while not done.is_set():
            samples.append((time.perf_counter(), server.rss_mb()))
            time.sleep(0.2)

    pick = random.Random(9)
    order = [pick.choice(sorted(expected)) for _ in range(requests)]
    outcome = {"right": 0, "busy": 0, "wrong": 0, "lost": 0}
    lock = threading.Lock()
    local = threading.local()

    def ask(name: str) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=f"http://127.0.0.1:{server.http}", timeout=120)
        try:
            answer = local.client.post(f"/v2/models/{name}/infer", json=v2(probe))
        except httpx.HTTPError:
            kind = "lost"
        else:
            if answer.status_code == 200:
                right = answer.json()["outputs"][0]["data"] == expected[name]
                kind = "right" if right else "wrong"
            elif answer.status_code == 503 and "retry-after" in answer.headers:
                kind = "busy"
            else:
                kind = "lost"
        with lock:
            outcome[kind] += 1

    sampler = threading.Thread(target=sample_rss)
    sampler.start()
    started = time.perf_counter()
    try:
        os.sched_setaffinity(0, {int(CLIENT_CORE)})
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(ask, order))
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
        loads = gauge(server, "predictor_repository_loads_total")
        held_bytes = gauge(server, "predictor_repository_bytes_loaded")
        held = gauge(server, "predictor_repository_models_loaded")
    finally:
        done.set()
        server.stop()
    half = [s for s in samples if s[0] >= samples[len(samples) // 2][0]]
    times = np.array([t for t, _ in half])
    rss = np.array([m for _, m in half])
    slope_per_s = float(np.polyfit(times - times[0], rss, 1)[0]) if len(half) > 2 else 0.0
    loads_per_s = loads / elapsed
    return {
        "models": f"{count} {'forests' if forest else 'logistic regressions'}",
        "budget": " ".join(budget),
        "requests": requests,
        "seconds": round(elapsed, 1),
        "outcome": outcome,
        "loads": int(loads),
        "held_at_end": int(held),
        "held_mib_at_end": round(held_bytes / 2**20, 2),
        "base_rss_mib": round(base_mb, 1),
        "peak_rss_mib": round(max(m for _, m in samples), 1),
        "end_rss_mib": round(samples[-1][1], 1),
        "slope_mib_per_1000_loads": round(slope_per_s / loads_per_s * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--forests", type=int, default=300, help="models of the forest sweep")
    parser.add_argument("--memory_mb", type=float, default=32, help="its memory budget")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-repository-") as tmp:
        work = Path(tmp)
        loads = cold_loads(work, args.rounds)
        print("| model | cold: load + first answer (ms) | warm answer (ms) |")
        print("|---|---|---|")
        for name, (cold, warm) in loads.items():
            print(f"| {name} | {cold:.1f} | {warm:.2f} |")
        by_count = ["--max_loaded_models", str(args.budget)]
        result = sweep(work, args.models, by_count, args.requests, args.clients, forest=False)
        print(json.dumps(result, indent=2))
        by_memory = ["--models_memory_mb", str(args.memory_mb)]
        result = sweep(work, args.forests, by_memory, args.requests, args.clients, forest=True)
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
