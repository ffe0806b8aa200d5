"""Where a request's time goes: each stage's cost in microseconds, beside the whole.

    python bench/stages.py [--duration 3] [--rounds 3]

For LR 1-row v2 and RF 64-row v2 at c=32: the predictor and the empty server (the transport's
ceiling, bench/empty.py) take turns on core 0 under wrk from core 1, as in bench/run.py. On one
core, a request's share of the core is 1e6 / req/s microseconds: the whole, and for the empty
server the transport alone (uvicorn, HTTP parsing, the ASGI hand-off). The predictor's /metrics,
read before and after its samples, give the rows per model call under that load.

Then, in this process pinned to core 0 with the same bundle loaded, each stage is timed alone on
the same body: parse (orjson into an InferRequest), decode (checked features), admit (the
in-flight limit), engine (one call over as many requests as the server batched under load,
divided by that many), encode (the v2 JSON document and its bytes) and metrics (the counters and
histograms one request moves). What is left of the whole, after the transport and those stages,
is the request path's glue (batcher hand-off and futures, the event loop, strategy and lane
calls), by difference.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
from loadgen import body, run_wrk
from servers import ROOT, make_models, start_server

sys.path.insert(0, str(ROOT))

CELLS = (("lr", 1), ("rf", 64))


def per_call_us(work: Callable[[], object], calls: int, repeats: int = 5) -> float:
    """The median over ``repeats`` of the mean time of one call, in microseconds."""
    for _ in range(min(calls, 50)):
        work()  # warm
    means = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            work()
        means.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(means)


def batch_totals(url: str, model: str) -> tuple[float, float]:
    """(rows, calls) the model has run so far, from ``predictor_batch_rows``."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = {"sum": 0.0, "count": 0.0}
    for kind in total:
        for value in re.findall(
            rf'^predictor_batch_rows_{kind}{{model="{model}"[^}}]*}} (\S+)$', text, re.M
        ):
            total[kind] += float(value)
    return total["sum"], total["count"]


def stage_costs(bundle: Path, model: str, rows: int, per_call: float) -> dict[str, float]:
    """Each stage alone, in this process, on the body the load generator sends."""
    import json

    from predictor.metrics import kserve_series, record
    from predictor.protocol.v2 import decode_v2, encode_v2_json
    from predictor.protocol.v2_rest import parse_infer_body
    from predictor.server.model import SklearnModel
    from predictor.settings import Settings

    digest = json.loads((bundle / "model.json").read_text())["artifact"]["sha256"]
    served = SklearnModel(model, settings=Settings(model_uri=str(bundle), model_sha256=digest))
    served.load()
    loaded = served.loaded
    signature, engine = loaded.signature, loaded.engine
    raw = body("v2", rows).encode()
    request = parse_infer_body(raw, json_length=None, model_name=model)
    batch = decode_v2(request, signature, frame=engine.takes_frames)
    together = max(1, round(per_call / rows))  # requests per model call under load
    wide = decode_v2(
        parse_infer_body(body("v2", rows * together).encode(), json_length=None, model_name=model),
        signature,
        frame=engine.takes_frames,
    )
    from predictor.inference.estimator import run_estimator

    results = run_estimator(engine, batch.features, batch.outputs)
    heavy = 200 if model == "rf" else 5000

    def encode() -> bytes:
        document = encode_v2_json(
            results, batch.outputs, signature, model_name=model, version="v", request_id=None
        )
        return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)

    def metrics() -> None:
        with record.InFlight(model) as flight:
            pass
        record.observe_request(model, loaded.version, "v2", "200", flight.elapsed)
        record.observe_predictions(model, loaded.version, signature, results, batch.n_rows)

    def per_batch_metrics() -> None:
        record.observe_batch(model, loaded.version, rows * together)
        kserve_series.observe_predict_time(model, 0.001)

    def admit() -> None:
        with served.admitted():
            pass

    return {
        "parse": per_call_us(
            lambda: parse_infer_body(raw, json_length=None, model_name=model), 5000
        ),
        "decode": per_call_us(
            lambda: decode_v2(request, signature, frame=engine.takes_frames), 5000
        ),
        "admit": per_call_us(admit, 20000),
        "engine": per_call_us(lambda: run_estimator(engine, wide.features, wide.outputs), heavy)
        / together,
        "encode": per_call_us(encode, 5000),
        "metrics": per_call_us(metrics, 5000) + per_call_us(per_batch_metrics, 5000) / together,
        "requests per call": float(together),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows_out = []
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        work = Path(tmp)
        paths = make_models(work / "models")
        for model, rows in CELLS:
            servers = [start_server(kind, model, paths, work) for kind in ("empty", "predictor")]
            empty, ours = servers
            try:
                url = f"http://127.0.0.1:{ours.http}"
                rps: dict[str, list[float]] = {"empty": [], "predictor": []}
                p50: list[float] = []
                rows_before, calls_before = batch_totals(url, model)
                for _ in range(args.rounds):
                    for server in servers:
                        cell = run_wrk(server, "v2", rows, 32, args.duration, work)
                        server.wait_idle()
                        rps[server.kind].append(cell.rps)
                        if server is ours:
                            p50.append(cell.p50_ms)
                rows_after, calls_after = batch_totals(url, model)
            finally:
                for server in servers:
                    server.stop()
            per_call = (rows_after - rows_before) / max(calls_after - calls_before, 1)
            os.sched_setaffinity(0, {0})
            costs = stage_costs(paths[f"{model}-bundle"], model, rows, per_call)
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
            whole = 1e6 / statistics.median(rps["predictor"])
            transport = 1e6 / statistics.median(rps["empty"])
            stages = sum(v for k, v in costs.items() if k != "requests per call")
            rows_out.append(
                (
                    model,
                    rows,
                    whole,
                    transport,
                    costs,
                    whole - transport - stages,
                    statistics.median(p50),
                )
            )
    print(
        "| cell | whole | transport (empty server) | parse | decode | admit | engine | encode "
        "| metrics | glue (by difference) | requests per model call | p50 latency |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for model, rows, whole, transport, costs, glue, latency in rows_out:
        print(
            f"| {model.upper()} {rows}-row v2, c=32 | {whole:.0f} µs | {transport:.0f} µs "
            f"| {costs['parse']:.1f} | {costs['decode']:.1f} | {costs['admit']:.2f} "
            f"| {costs['engine']:.1f} | {costs['encode']:.1f} | {costs['metrics']:.1f} "
            f"| {glue:.0f} µs | {costs['requests per call']:.0f} | {latency:.2f} ms |"
        )


if __name__ == "__main__":
    main()
