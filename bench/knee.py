"""The knee of the latency curve: how many requests in flight one predictor pod should take.

    python bench/knee.py [--duration 3] [--rounds 2] [--levels 1,2,4,8,16,32,64]

The predictor (the bundle of ``bench/servers.py``, digest pinned) runs pinned to one core, as a
pod with a CPU limit of 1 runs; wrk drives it from another core with 1-row v1 requests at each
concurrency in ``--levels``. Per model (LogisticRegression, the forest): requests per second,
p50 and p99 at each level (the median of ``--rounds``), and the knee: the lowest concurrency
whose throughput is within 5% of the best. Past it, more requests in flight only queue: latency
grows and throughput does not. That concurrency is what Knative's
``autoscaling.knative.dev/target`` (KServe's ``scaleTarget`` with ``scaleMetric: concurrency``)
should be set to (docs/operations.md says how the manifests use it).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from loadgen import Cell, run_wrk
from servers import make_models, start_server


def knee(cells: list[Cell], within: float = 0.05) -> int:
    """The lowest concurrency whose throughput is within ``within`` of the best."""
    best = max(c.rps for c in cells)
    return min(c.concurrency for c in cells if c.rps >= (1 - within) * best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--levels", default="1,2,4,8,16,32,64")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-knee-"))
    paths = make_models(work / "models")
    for model in ("lr", "rf"):
        server = start_server("predictor", model, paths, work)
        try:
            medians = []
            for level in levels:
                samples = []
                for _ in range(args.rounds):
                    samples.append(run_wrk(server, "v1", 1, level, args.duration, work))
                    server.wait_idle()
                samples.sort(key=lambda c: c.rps)
                medians.append(samples[len(samples) // 2])
        finally:
            server.stop()
        print(f"\n{model}: 1-row v1 requests, predictor on one core")
        print("| in flight | requests/s | p50 ms | p99 ms |")
        print("|---|---|---|---|")
        for cell in medians:
            print(
                f"| {cell.concurrency} | {cell.rps:,.0f} | {cell.p50_ms:.2f} | {cell.p99_ms:.2f} |"
            )
        found = knee(medians)
        at = next(c for c in medians if c.concurrency == found)
        low = statistics.median(c.p99_ms for c in medians[:1])
        print(f"knee: {found} in flight ({at.rps:,.0f} requests/s, p99 {at.p99_ms:.2f} ms; "
              f"p99 at 1 in flight {low:.2f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
