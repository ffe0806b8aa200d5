"""A bounded soak test: concurrency well above the in-flight limit, every answer checked, RSS sampled.

    python bench/soak.py [--seconds 120] [--concurrency 128] [--max-in-flight 32]

Starts the predictor (pinned to core 0) on a 100-tree random forest with a small in-flight limit,
drives it from core 1 over 127.0.0.1 with many more concurrent callers than the limit, checks
every 200 against scikit-learn's answer for the same row, accepts only 503s with Retry-After
otherwise, and samples the server's resident memory every few seconds. Prints one JSON report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def drive(
    url: str, rows: np.ndarray, expected: list[bool], seconds: float, concurrency: int, pid: int
) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    wrong = 0
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    until = started + seconds

    async def caller(seed: int) -> None:
        nonlocal wrong
        pick = random.Random(seed)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while time.monotonic() < until:
                i = pick.randrange(len(rows))
                try:
                    reply = await client.post(
                        "/v1/models/rf:predict", json={"instances": [rows[i].tolist()]}
                    )
                except httpx.HTTPError as e:
                    statuses[f"transport:{type(e).__name__}"] += 1
                    continue
                if reply.status_code == 200:
                    statuses["200"] += 1
                    if reply.json()["predictions"] != [expected[i]]:
                        wrong += 1
                elif reply.status_code == 503 and reply.headers.get("retry-after") == "1":
                    statuses["503"] += 1
                    await asyncio.sleep(0.01)
                else:
                    statuses[str(reply.status_code)] += 1

    async def sampler() -> None:
        while time.monotonic() < until:
            samples.append((time.monotonic() - started, rss_mb(pid)))
            await asyncio.sleep(5)

    await asyncio.gather(sampler(), *(caller(n) for n in range(concurrency)))
    warm = [mb for at, mb in samples if at >= min(30.0, seconds / 3)]
    return {
        "seconds": seconds,
        "concurrency": concurrency,
        "statuses": dict(statuses),
        "wrong_answers": wrong,
        "rss_mb_after_warmup": {"min": min(warm), "max": max(warm)} if warm else None,
        "rss_mb_samples": [round(mb, 1) for _, mb in samples],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--max-in-flight", type=int, default=32)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 20))
    model = RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0).fit(
        x, x[:, 0] + x[:, 1] > 0
    )
    rows = rng.normal(size=(500, 20))
    expected = model.predict(rows).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rf.joblib"
        joblib.dump(model, path)
        port = free_port()
        server = subprocess.Popen(
            [
                "taskset",
                "-c",
                "0",
                sys.executable,
                "-m",
                "predictor",
                "--model_name",
                "rf",
                "--model_uri",
                str(path),
                "--http_port",
                str(port),
                "--grpc_port",
                str(free_port()),
                "--max_in_flight",
                str(args.max_in_flight),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("PREDICTOR_")},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            os.sched_setaffinity(0, {1})
            report = asyncio.run(
                drive(url, rows, expected, args.seconds, args.concurrency, server.pid)
            )
        finally:
            server.send_signal(signal.SIGTERM)
            report_exit = server.wait(timeout=60)
    report["server_exit_status"] = report_exit
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
