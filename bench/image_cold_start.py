"""Cold start of the runtime image: from ``docker run`` to the first answer, on this machine.

    python bench/image_cold_start.py --image kserve-sklearn-predictor:test [--rounds 5]

The demo bundle (taxi 1.0.0, published into a temporary folder) is mounted read-only at
/mnt/models, as KServe's storage initializer or a modelcar leaves it; the container runs
read-only as uid 1000 with no capabilities, on the host's network. Each round creates a fresh
container (timed apart: it depends on the storage driver), starts it and polls
``POST /v1/models/taxi:predict`` every 20 ms until it answers 200: from start to that answer is
what a request that woke a scaled-to-zero service waits, less Kubernetes' scheduling and the
image pull (the node has the image cached). Printed: each round, the median and the
worst, and the container's memory once it answered.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from servers import ROOT, free_port

sys.path.insert(0, str(ROOT))


def one_start(image: str, models: Path, rows: list[list[object]]) -> tuple[float, float, str]:
    """Seconds to create the container, then from its start to the first answer; memory."""
    http, grpc = free_port(), free_port()
    creating = time.perf_counter()
    container = subprocess.run(
        ["docker", "create", "--read-only", "--tmpfs", "/tmp", "--network", "host",
         "--user", "1000:1000", "--cap-drop", "ALL", "--volume", f"{models}:/mnt/models:ro",
         image, "--model_name", "taxi", "--model_dir", "/mnt/models",
         "--http_port", str(http), "--grpc_port", str(grpc)],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    created = time.perf_counter() - creating
    started = time.perf_counter()
    subprocess.run(["docker", "start", container], check=True, capture_output=True)
    try:
        url = f"http://127.0.0.1:{http}/v1/models/taxi:predict"
        deadline = started + 180
        while time.perf_counter() < deadline:
            try:
                if httpx.post(url, json={"instances": rows}, timeout=2).status_code == 200:
                    elapsed = time.perf_counter() - started
                    stats = subprocess.run(
                        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container],
                        capture_output=True, text=True, check=False,
                    ).stdout.strip()  # fmt: skip
                    return created, elapsed, stats
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise RuntimeError("the container never answered")
    finally:
        subprocess.run(["docker", "rm", "--force", container], capture_output=True, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--image", default="kserve-sklearn-predictor:test")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from predictor.demo import make_trips, publish_demo_bundles

    work = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    publish_demo_bundles(work / "registry", work / "build")
    models = work / "registry" / "taxi" / "1.0.0"
    rows = make_trips(1, seed=3)[0].to_numpy().tolist()
    times, creations = [], []
    for i in range(args.rounds):
        created, elapsed, memory = one_start(args.image, models, rows)
        times.append(elapsed)
        creations.append(created)
        print(
            f"round {i + 1}: container created in {created:.2f} s; from its start to the first "
            f"answer {elapsed:.2f} s (memory then: {memory})"
        )
    print(
        f"start to first answer: median {statistics.median(times):.2f} s, worst "
        f"{max(times):.2f} s; creating the container: median {statistics.median(creations):.2f} s"
    )


if __name__ == "__main__":
    main()
