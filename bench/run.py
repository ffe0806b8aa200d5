"""The benchmark: each server pinned to core 0, load from core 1 over 127.0.0.1, ratios in one run.

Servers: ``empty`` (no model on the same transport stack, bench/empty.py: the ceiling),
``baseline`` (a plain kserve.Model, bench/baseline.py), ``predictor`` (ours, serving a
bundle with a pinned digest and an acceptance set, so cold start includes every check),
``mlserver`` (MLServer's sklearn runtime in-process) and ``mlserver-batch`` (with adaptive
batching), when MLServer is installed in bench/.venv-mlserver (``make bench`` does that).
Load: wrk for REST (v1, v2) and h2load (nghttp2) for gRPC, both load generators in C. Cells:
LogisticRegression and RandomForest(100 trees, depth 12) on 20 features; 1 and 64 rows;
concurrency 1 and 32. All servers of a model run at once (idle but for the one under load) and
take turns, ``--rounds`` samples each per cell; the table shows each server's median.
``servers`` starts the servers, ``loadgen`` drives them; this module picks the cells and reports,
and ``chart`` draws requests per second per cell (bench/results/chart.png).

    python bench/run.py [--duration 4] [--rounds 3] [--quick] [--servers baseline,predictor]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from chart import draw
from loadgen import Cell, run_grpc, run_wrk
from servers import MLSERVER, ROOT, Server, cold_start, make_models, start_server


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
    parser.add_argument("--servers", default="empty,baseline,predictor,mlserver,mlserver-batch")
    parser.add_argument("--models", default="lr,rf")
    parser.add_argument("--quick", action="store_true", help="only the cells the targets name")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument("--chart", type=Path, default=ROOT / "bench" / "results" / "chart.png")
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
                    if kind != "empty":  # no model to load
                        timings[kind].append(cold_start(kind, model, paths, work))
            for kind, seconds in timings.items():
                if seconds:
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
    draw([asdict(c) for c in results], args.chart)
    print(render(results, starts, machine()))
    print(f"\nchart: {args.chart}")


def render(results: list[Cell], starts: dict[str, dict[str, float]], where: str) -> str:
    """The results table, ratios against the baseline (and MLServer with batching) of the same run."""
    by_key = {(c.server, c.model, c.protocol, c.rows, c.concurrency): c for c in results}
    lines = [
        f"Machine: {where}",
        "",
        "| model | proto | rows | c | baseline req/s | predictor req/s | x baseline | mlserver-batch req/s | x mlserver-batch | empty req/s | x empty | p50 ms (base / ours) | p99 ms (base / ours) | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (server, model, protocol, rows, concurrency), ours in sorted(by_key.items()):
        if server != "predictor":
            continue
        base = by_key.get(("baseline", model, protocol, rows, concurrency))
        mls = by_key.get(("mlserver-batch", model, protocol, rows, concurrency))
        ratio = f"{ours.rps / base.rps:.2f}x" if base and base.rps else "n/a"
        mratio = f"{ours.rps / mls.rps:.2f}x" if mls and mls.rps else "n/a"
        empty = by_key.get(("empty", model, protocol, rows, concurrency))
        eratio = f"{ours.rps / empty.rps:.2f}" if empty and empty.rps else "n/a"
        lines.append(
            f"| {model} | {protocol} | {rows} | {concurrency} | {base.rps if base else float('nan'):,.0f} | {ours.rps:,.0f} | {ratio} | "
            f"{mls.rps if mls else float('nan'):,.0f} | {mratio} | {empty.rps if empty else float('nan'):,.0f} | {eratio} | {base.p50_ms if base else float('nan'):.2f} / {ours.p50_ms:.2f} | "
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
