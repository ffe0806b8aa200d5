"""What ``:explain`` costs, and what an explain flood does to predictions.

    python bench/explain.py [--calls 30] [--duration 5]

1. **Cost.** The bench's models (LogisticRegression and RandomForest(100, depth 12), 20
   features), each served as its bundle by the predictor pinned to core 0. For 1 and 64 rows:
   the median latency of ``:explain`` (one call at a time, from core 1), beside shap computing
   the same attributions in this process (pinned to core 0 while the server idles) and the
   server's ``:predict`` latency for the same body (the request's overhead). The ratio is
   ``explain / (shap in-process + predict)``.
2. **Flood.** The forest's predictions (1 row, v1, wrk c=8 from core 1) alone, then beside a
   flood of 64-row explanations on the same server (a second wrk on ``:explain``): at c=2,
   as many as the explain workers run, so every one is computed; and at c=8, where what
   exceeds the workers is refused with 503 at once and wrk sends it again at once (no
   back-off, unlike a client that reads ``Retry-After``). The predictions' req/s, p50, p99.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx
import joblib
import numpy as np
from loadgen import LOAD_CORE, body, run_wrk
from servers import ROOT, make_models, start_server

sys.path.insert(0, str(ROOT))


def median_ms(url: str, payload: str, calls: int) -> float:
    """The median latency of ``calls`` sequential POSTs of ``payload`` to ``url``, in ms."""
    times = []
    with httpx.Client(timeout=120) as client:
        for i in range(calls + 3):
            started = time.perf_counter()
            response = client.post(url, content=payload)
            elapsed = (time.perf_counter() - started) * 1e3
            response.raise_for_status()
            if i >= 3:  # the first calls build the explainer
                times.append(elapsed)
    return statistics.median(times)


def in_process_ms(model_file: Path, rows: np.ndarray, background: np.ndarray, calls: int) -> float:
    """shap's own time for the same attributions, in this process on the server's core."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import shap

        model = joblib.load(model_file)
        if hasattr(model, "estimators_"):
            explainer = shap.TreeExplainer(model)
        else:
            explainer = shap.LinearExplainer(model, shap.maskers.Independent(background))
        for _ in range(3):
            explainer.shap_values(rows)
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            explainer.shap_values(rows)
            times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def flood(
    url: str, payload: str, duration: float, work: Path, concurrency: int
) -> subprocess.Popen[str]:
    """wrk posting ``payload`` to ``url`` for ``duration`` seconds, from core 1."""
    script = work / "explain.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(payload)}\n"
    )
    return subprocess.Popen(
        ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{concurrency}", f"-d{int(duration) + 2}s",
         "-s", str(script), url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        paths = make_models(work)
        background = np.asarray(
            json.loads((work / "lr" / "e2e.json").read_text())["instances"], dtype=np.float64
        )
        print("| model | rows | :explain ms | shap in-process ms | :predict ms | ratio |")
        print("|---|---|---|---|---|---|")
        servers = {}
        for model in ("lr", "rf"):
            server = start_server("predictor", model, paths, work)
            servers[model] = server
            base = f"http://127.0.0.1:{server.http}/v1/models/{model}"
            for rows in (1, 64):
                payload = body("v1", rows)
                explain = median_ms(f"{base}:explain", payload, args.calls)
                predict = median_ms(f"{base}:predict", payload, args.calls)
                data = np.asarray(json.loads(payload)["instances"], dtype=np.float64)
                os.sched_setaffinity(0, {0})
                shap_ms = in_process_ms(paths[model] / "model.joblib", data, background, args.calls)
                os.sched_setaffinity(0, {1})
                ratio = explain / (shap_ms + predict)
                print(f"| {model} | {rows} | {explain:.2f} | {shap_ms:.2f} | {predict:.2f} | "
                      f"{ratio:.2f} |")  # fmt: skip
        server = servers["rf"]
        predict_url = f"http://127.0.0.1:{server.http}/v1/models/rf:predict"
        print()
        print("| predictions (rf, 1 row, v1, c=8) | req/s | p50 ms | p99 ms | explain answers |")
        print("|---|---|---|---|---|")
        for label, concurrency in (
            ("alone", 0),
            ("beside explanations (64 rows, c=2: all computed)", 2),
            ("beside an explain storm (64 rows, c=8: 6 refused and resent at once)", 8),
        ):
            flooding = None
            if concurrency:
                flooding = flood(
                    predict_url.replace(":predict", ":explain"),
                    body("v1", 64),
                    args.duration,
                    work,
                    concurrency,
                )
                time.sleep(1.0)
            cell = run_wrk(server, "v1", 1, 8, args.duration, work)
            answered = ""
            if flooding is not None:
                out = flooding.communicate(timeout=args.duration + 60)[0]
                total = re.search(r"(\d+) requests in", out)
                refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
                answered = (
                    f"{int(total.group(1)) - int(refused.group(1) if refused else 0)} answered, "
                    f"{refused.group(1) if refused else 0} refused (503)"
                    if total
                    else out[-200:]
                )
            print(f"| {label} | {cell.rps:,.0f} | {cell.p50_ms:.2f} | {cell.p99_ms:.2f} | "
                  f"{answered} |")  # fmt: skip
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
