"""KEDA's query, as the manifest writes it, run by a real Prometheus against a real predictor.

The predictor batches requests and lets a lone one wait 3 s for company (the wait is on the
event loop, which stays free to answer scrapes); three requests are sent at once and held in
flight while Prometheus scrapes every second. The ScaledObject's query (read from the
rendered ``gke-keda`` overlay, the model label renamed to the served model's) must then give 3:
the requests being served, which KEDA divides by its per-pod threshold.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import joblib
import pytest

from predictor.demo import make_trips, train_demo_model
from tests.helpers import ServerFactory
from tests.prometheus_server import running_prometheus
from tests.unit.test_manifests import render

pytestmark = pytest.mark.timeout(120)


def test_the_keda_query_counts_the_requests_in_flight(
    server: ServerFactory, tmp_path: Path
) -> None:
    (scaled,) = [d for d in render("manifests/overlays/gke-keda") if d["kind"] == "ScaledObject"]
    query = scaled["spec"]["triggers"][0]["metadata"]["query"]
    assert 'model="taxi"' in query
    model = tmp_path / "model.joblib"
    joblib.dump(train_demo_model(n=500), model)
    waiting = ["--batch_max_rows", "64", "--batch_max_wait_ms", "3000"]
    running = server.start(str(model), name="taxi", args=waiting)
    rows = make_trips(1, seed=2)[0].to_numpy().tolist()
    with running_prometheus([running.http_port], tmp_path) as prometheus:
        api = f"{prometheus}/api/v1/query"

        def value() -> list[float]:
            found = httpx.get(api, params={"query": query}).json()["data"]["result"]
            return [float(r["value"][1]) for r in found]

        deadline = time.monotonic() + 30
        while value() != [0.0]:  # scraped, idle
            assert time.monotonic() < deadline, "Prometheus never scraped the predictor"
            time.sleep(0.3)
        callers = [
            threading.Thread(
                target=httpx.post,
                args=(f"{running.url}/v1/models/taxi:predict",),
                kwargs={"json": {"instances": rows}, "timeout": 30},
            )
            for _ in range(3)
        ]
        for caller in callers:
            caller.start()
        seen: list[float] = []
        while any(c.is_alive() for c in callers) and 3.0 not in seen:
            seen += value()
            time.sleep(0.2)
        for caller in callers:
            caller.join(30)
    assert 3.0 in seen, seen
