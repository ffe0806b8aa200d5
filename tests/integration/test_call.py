"""``python -m predictor call`` through an ingress that routes by Host and checks a token.

A real predictor behind nginx (``tests.ingress``); the client run as a process, over v1, v2 and
gRPC, with rows from --instances, a JSON file and a CSV file. The answers must be the model's;
a wrong Host, a missing token and a bad row come back as the server's (or gateway's) own words.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import REPO_ROOT, RunningServer, ServerFactory
from tests.ingress import HOST, TOKEN, Ingress

ROWS = [[132, 236, 1], [50, 52, 2], [7, 7, 4]]
NAMES = ["pickup_zone", "dropoff_zone", "passenger_count"]
AS_TAXI = ["--model", "taxi", "--host", HOST, "--token", TOKEN]
"""Who the calls are for, and with what token, as the ingress expects."""


@pytest.fixture
def deployed(server: ServerFactory, demo_model_dir: Path, tmp_path: Path) -> Iterator[Any]:
    running = server.start(str(demo_model_dir), name="taxi")
    ingress = Ingress(tmp_path / "nginx", http_port=running.http_port, grpc_port=running.grpc_port)
    try:
        yield running, ingress
    finally:
        ingress.stop()


def call(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "predictor", "call", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def direct(running: RunningServer) -> dict[str, Any]:
    body = {"instances": ROWS, "parameters": {"outputs": ["predict", "predict_proba"]}}
    return dict(httpx.post(f"{running.url}/v1/models/taxi:predict", json=body).json())


def test_v1_v2_and_grpc_answer_through_the_ingress(deployed: Any, tmp_path: Path) -> None:
    running, ingress = deployed
    expected = direct(running)
    as_json = tmp_path / "rows.json"
    as_json.write_text(json.dumps({"instances": ROWS}))
    as_csv = tmp_path / "rows.csv"
    as_csv.write_text(",".join(NAMES) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in ROWS))
    common = [*AS_TAXI, "--format", "csv"]
    runs = {
        "v1 --instances": call(ingress.url, *common, "--instances", json.dumps(ROWS)),
        "v2 --json": call(ingress.url, *common, "--protocol", "v2", "--json", str(as_json)),
        "grpc --csv": call(
            ingress.grpc_target, *common, "--protocol", "grpc", "--csv", str(as_csv)
        ),
    }
    for what, done in runs.items():
        assert done.returncode == 0, (what, done.stderr)
        table = list(csv.reader(io.StringIO(done.stdout)))
        assert [row[0] for row in table[1:]] == expected["predict"], what
    both = ["--instances", json.dumps(ROWS), "--outputs", "predict,predict_proba"]
    for protocol, target in (
        ("v1", ingress.url),
        ("v2", ingress.url),
        ("grpc", ingress.grpc_target),
    ):
        probabilities = call(target, *common, "--protocol", protocol, *both)
        assert probabilities.returncode == 0, (protocol, probabilities.stderr)
        header, *rows = list(csv.reader(io.StringIO(probabilities.stdout)))
        assert header == ["predict"] + [f"predict_proba_{c}" for c in expected["classes"]], protocol
        assert [row[0] for row in rows] == expected["predict"], protocol
        assert [float(v) for row in rows for v in row[1:]] == pytest.approx(
            [p for row in expected["predict_proba"] for p in row]
        ), protocol
    aligned = call(ingress.url, *AS_TAXI, "--instances", json.dumps(ROWS))
    assert aligned.stdout.splitlines()[0].split() == ["predictions"]
    assert [line.split()[0] for line in aligned.stdout.splitlines()[1:]] == expected["predict"]


def test_errors_come_back_in_the_server_s_own_words(deployed: Any) -> None:
    running, ingress = deployed
    bad = [[1, 2]]
    server_says = httpx.post(f"{running.url}/v1/models/taxi:predict", json={"instances": bad})
    assert server_says.status_code == 400
    refused = call(ingress.url, *AS_TAXI, "--instances", "[[1, 2]]")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"predictor call: 400 from {ingress.url}/v1/models/taxi:predict: {server_says.text}"
    )
    for protocol, target in (
        ("v1", ingress.url),
        ("v2", ingress.url),
        ("grpc", ingress.grpc_target),
    ):
        wrong_host = call(
            target,
            "--model",
            "taxi",
            "--host",
            "other.default.example.com",
            "--token",
            TOKEN,
            "--protocol",
            protocol,
            "--instances",
            json.dumps(ROWS),
        )
        assert wrong_host.returncode == 1, (protocol, wrong_host.stderr)
        assert ("404" in wrong_host.stderr) or ("UNIMPLEMENTED" in wrong_host.stderr), (
            wrong_host.stderr
        )
        no_token = call(
            target,
            "--model",
            "taxi",
            "--host",
            HOST,
            "--protocol",
            protocol,
            "--instances",
            json.dumps(ROWS),
        )
        assert no_token.returncode == 1
        assert ("401" in no_token.stderr) or ("UNAUTHENTICATED" in no_token.stderr), no_token.stderr
    grpc_refused = call(
        ingress.grpc_target, *AS_TAXI, "--protocol", "grpc", "--instances", "[[1, 2]]"
    )
    assert grpc_refused.returncode == 1
    assert grpc_refused.stderr.startswith("predictor call: INVALID_ARGUMENT from ")
    unreachable = call("http://127.0.0.1:9", "--model", "taxi", "--instances", "[[1, 2, 3]]")
    assert unreachable.returncode == 2


def test_a_csv_with_an_id_column_is_answered_row_by_row_and_a_typo_is_named(
    deployed: Any, tmp_path: Path
) -> None:
    running, ingress = deployed
    expected = direct(running)
    with_ids = tmp_path / "trips.csv"
    with_ids.write_text(
        "trip_id," + ",".join(NAMES) + "\n"
        + "".join(f"t{i}," + ",".join(map(str, r)) + "\n" for i, r in enumerate(ROWS))
    )  # fmt: skip
    typo = tmp_path / "typo.csv"
    typo.write_text("pickup_zone,dropof_zone,passenger_count\n132,236,1\n")

    answered = call(ingress.url, *AS_TAXI, "--format", "csv", "--csv", str(with_ids),
                    "--id_column", "trip_id", "--protocol", "v2")  # fmt: skip
    unnamed = call(ingress.url, *AS_TAXI, "--csv", str(with_ids))
    wrong = call(ingress.url, *AS_TAXI, "--csv", str(typo))

    assert answered.returncode == 0, answered.stderr
    table = list(csv.reader(io.StringIO(answered.stdout)))
    assert table[0] == ["trip_id", "predict"]
    assert table[1:] == [[f"t{i}", label] for i, label in enumerate(expected["predict"])]
    assert unnamed.returncode == 1
    assert "unknown feature(s) 'trip_id'" in unnamed.stderr
    assert wrong.returncode == 1
    assert "missing feature(s) 'dropoff_zone'; unknown feature(s) 'dropof_zone'" in wrong.stderr
    assert "the model takes: pickup_zone, dropoff_zone, passenger_count" in wrong.stderr
