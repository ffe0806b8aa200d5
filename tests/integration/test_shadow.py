"""Shadow deployment through real server processes: a primary and a shadow that disagree.

The two models are fitted on different targets, so they disagree on a share of rows that
scikit-learn tells in advance. Requests go over v1, v2 REST and gRPC; every answer must be the
primary's; the agreement counter must match scikit-learn's count; the prediction log must hold
both outputs, and ``shadow-report`` must say the same. The shadow is also a mirror (another
server, ``--shadow_url``), and a shadow that cannot be loaded stops start-up unless optional.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import joblib
import numpy as np
import orjson
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from prometheus_client.parser import text_string_to_metric_families
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from predictor.shadow.log import PredictionLog
from predictor.stores.files import sha256_file
from tests.gcs import GCSBucket
from tests.helpers import REPO_ROOT, RunningServer, ServerFactory

pytestmark = pytest.mark.timeout(120)

RNG = np.random.default_rng(21)
X = RNG.normal(size=(400, 4))
ROWS = RNG.normal(size=(240, 4))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("shadow-models")
    primary = LogisticRegression().fit(X, np.where(X[:, 0] + X[:, 1] > 0, "up", "down"))
    shadow = LogisticRegression().fit(X, np.where(X[:, 0] - X[:, 1] > 0, "up", "down"))
    joblib.dump(primary, folder / "primary.joblib")
    joblib.dump(shadow, folder / "shadow.joblib")
    return {"primary": folder / "primary.joblib", "shadow": folder / "shadow.joblib"}


def shadow_counts(server: RunningServer) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics").text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "predictor_shadow_predictions":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    found[sample.labels["agreement"]] = sample.value
    return found


def wait_for_rows(server: RunningServer, rows: int) -> dict[str, float]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        counts = shadow_counts(server)
        if sum(counts.values()) >= rows:
            return counts
        time.sleep(0.1)
    raise AssertionError(f"the shadow saw {shadow_counts(server)} rows, expected {rows}")


def send_everywhere(server: RunningServer, name: str) -> list[list[str]]:
    """The rows in 8-row requests: a third each over v1, v2 REST and gRPC; the labels back."""
    answers = []
    stub = GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc_target))
    for i, start in enumerate(range(0, len(ROWS), 8)):
        rows = ROWS[start : start + 8]
        if i % 3 == 0:
            body = httpx.post(
                f"{server.url}/v1/models/{name}:predict", json={"instances": rows.tolist()}
            )
            assert body.status_code == 200, body.text
            answers.append(body.json()["predictions"])
        elif i % 3 == 1:
            tensor = {
                "name": "x",
                "shape": [len(rows), 4],
                "datatype": "FP64",
                "data": rows.tolist(),
            }
            body = httpx.post(f"{server.url}/v2/models/{name}/infer", json={"inputs": [tensor]})
            assert body.status_code == 200, body.text
            answers.append(body.json()["outputs"][0]["data"])
        else:
            request = pb.ModelInferRequest(model_name=name, id=f"g{i}")
            tensor = request.inputs.add(name="x", datatype="FP64", shape=[len(rows), 4])
            tensor.contents.fp64_contents.extend(rows.ravel().tolist())
            reply = stub.ModelInfer(request)
            answers.append([s.decode() for s in reply.outputs[0].contents.bytes_contents])
    return answers


def test_callers_get_the_primary_and_the_shadow_is_compared_and_logged(
    server: ServerFactory, models: dict[str, Path], tmp_path: Path
) -> None:
    primary, shadow = joblib.load(models["primary"]), joblib.load(models["shadow"])
    logs = tmp_path / "log"
    running = server.start(
        str(models["primary"]),
        name="taxi",
        args=["--shadow_model_uri", str(models["shadow"]), "--prediction_log", str(logs)],
    )

    answers = send_everywhere(running, "taxi")

    expected = primary.predict(ROWS)
    assert [label for batch in answers for label in batch] == expected.tolist()
    agree = int(np.sum(expected == shadow.predict(ROWS)))
    assert 0 < agree < len(ROWS)  # they do disagree, on a share known in advance
    counts = wait_for_rows(running, len(ROWS))
    assert abs(counts["agree"] - agree) <= 1
    assert abs(counts["disagree"] - (len(ROWS) - agree)) <= 1
    version = httpx.post(
        f"{running.url}/v1/models/taxi:predict", json={"instances": ROWS[:1].tolist()}
    ).json()["model_version"]
    assert version == sha256_file(models["primary"])[:12]

    running.stop()
    lines = [
        orjson.loads(line)
        for f in sorted(logs.glob("*.jsonl"))
        for line in f.read_bytes().splitlines()
    ]
    assert len(lines) >= len(ROWS)
    logged = lines[: len(ROWS)]
    assert {r["shadow_version"] for r in logged} == {sha256_file(models["shadow"])[:12]}
    assert all(r["outputs"]["predict"] in ("up", "down") for r in logged)
    assert all(set(r["shadow_outputs"]) == {"predict", "predict_proba"} for r in logged)
    assert sum(r["agree"] for r in logged) == counts["agree"]

    report = subprocess.run(
        [sys.executable, "-m", "predictor", "shadow-report", str(logs)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert f"agreement: {sum(r['agree'] for r in lines) / len(lines):.4f}" in report.stdout
    assert "confusion (rows: primary label, columns: shadow label):" in report.stdout
    assert "PSI of shadow vs primary outputs:" in report.stdout


def test_a_bare_forest_as_shadow_moves_to_the_native_engine_and_keeps_comparing(
    server: ServerFactory, models: dict[str, Path], tmp_path: Path
) -> None:
    labels = np.where(X[:, 0] - X[:, 1] > 0, "up", "down")
    forest = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, labels)
    joblib.dump(forest, tmp_path / "forest.joblib")
    running = server.start(
        str(models["primary"]), args=["--shadow_model_uri", str(tmp_path / "forest.joblib")]
    )
    deadline = time.monotonic() + 60
    while "now on the ONNX Runtime" not in running.log():
        assert time.monotonic() < deadline, running.log()[-3000:]
        time.sleep(0.2)
    assert f"shadow model {sha256_file(tmp_path / 'forest.joblib')[:12]}: now on" in running.log()
    info = httpx.get(f"{running.url}/metrics").text
    assert "RandomForest" not in info  # the primary's model_info is the primary's alone

    answer = httpx.post(f"{running.url}/v1/models/model:predict", json={"instances": ROWS.tolist()})
    assert answer.status_code == 200
    counts = wait_for_rows(running, len(ROWS))
    expected = int((forest.predict(ROWS) == np.asarray(answer.json()["predictions"])).sum())
    assert abs(counts["agree"] - expected) <= 1, (counts, expected)


def test_a_mirror_endpoint_is_compared_as_a_shadow(
    server: ServerFactory, models: dict[str, Path]
) -> None:
    primary, shadow = joblib.load(models["primary"]), joblib.load(models["shadow"])
    other = server.start(str(models["shadow"]), name="taxi")
    running = server.start(
        str(models["primary"]),
        name="taxi",
        args=["--shadow_url", f"{other.url}/v1/models/taxi:predict"],
    )

    send_everywhere(running, "taxi")

    agree = int(np.sum(primary.predict(ROWS) == shadow.predict(ROWS)))
    counts = wait_for_rows(running, len(ROWS))
    assert abs(counts["agree"] - agree) <= 1


def test_a_shadow_that_cannot_load_stops_start_up_unless_optional(
    server: ServerFactory, models: dict[str, Path], tmp_path: Path
) -> None:
    missing = str(tmp_path / "nope.joblib")

    refused = server.run_to_exit(str(models["primary"]), args=["--shadow_model_uri", missing])
    optional = server.start(
        str(models["primary"]), args=["--shadow_model_uri", missing, "--shadow_optional"]
    )

    assert refused.process.returncode == 2
    assert "shadow model " + missing in refused.log()
    answer = httpx.post(
        f"{optional.url}/v1/models/model:predict", json={"instances": ROWS[:2].tolist()}
    )
    assert answer.status_code == 200
    assert "serving without the shadow" in optional.log()


def test_a_gcs_prediction_log_is_uploaded_whole_file_by_file(
    gcs: GCSBucket, tmp_path: Path
) -> None:
    log = PredictionLog(gcs.uri("logs/"), max_bytes=200, max_seconds=3600)
    first = [{"id": f"r{i}", "agree": True} for i in range(10)]  # about 250 bytes: one file

    log.write(first)
    log.write([{"id": "r10", "agree": False}])  # the first file is due: closed and uploaded
    log.close()

    blobs = sorted(gcs.client().list_blobs(gcs.name, prefix="logs/"), key=lambda b: b.name)
    assert len(blobs) == 2 and all(b.name.endswith(".jsonl") for b in blobs)
    lines = [orjson.loads(x) for b in blobs for x in b.download_as_bytes().splitlines()]
    assert [r["id"] for r in lines] == [f"r{i}" for i in range(11)]
