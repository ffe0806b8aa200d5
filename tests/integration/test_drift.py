"""Live drift per feature on a real predictor process, against the reference its bundle carries.

A pipeline over three numbers and a string column, published with a sample (``publish
--sample``: its reference), served with a drift window; rows are sent over v2 and v1 REST, and
gRPC, and ``/metrics`` is read. The expected indexes are computed here from ``reference.json``
with a formula of this file's own (numpy's histogram, not the predictor's binning).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from predictor.publishing.publish import BundleSpec, publish
from tests.helpers import REPO_ROOT, RunningServer, ServerFactory, wait_until

pytestmark = pytest.mark.timeout(300)

NUMBERS = ["distance", "fare", "hour"]
ZONES = ["JFK", "LGA", "Midtown", "Harlem", "Queens"]
WINDOW = 3000


def draw(rows: int, seed: int, *, shift: float = 0.0) -> pd.DataFrame:
    """Rows of the reference distribution (``distance`` moved by ``shift`` standard deviations)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "distance": rng.normal(5.0, 2.0, rows) + shift * 2.0,
            "fare": rng.gamma(2.0, 10.0, rows),
            "hour": rng.integers(0, 24, rows).astype(float),
            "zone": rng.choice(ZONES, rows, p=[0.3, 0.2, 0.2, 0.2, 0.1]),
        }
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("drift")
    train = draw(4000, 0)
    label = (train["distance"] + train["fare"] / 10 > 7).astype(int)
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["zone"]), (SimpleImputer(), NUMBERS)
        ),
        LogisticRegression(max_iter=1000),
    ).fit(train, label)
    joblib.dump(model, work / "model.joblib")
    draw(5000, 1).to_csv(work / "sample.csv", index=False)
    spec = BundleSpec(work / "model.joblib", "trips", "1.0.0", sample_file=work / "sample.csv")
    return Path(publish(spec, str(work / "registry")))


@pytest.fixture
def served(server: ServerFactory, bundle: Path) -> RunningServer:
    return server.start(str(bundle), name="trips", args=["--drift_window_rows", str(WINDOW)])


def send(running: RunningServer, frame: pd.DataFrame, per_request: int = 100) -> None:
    """Every row, ``per_request`` at a time, over v2 REST, v1 REST and gRPC in turn."""
    with (
        httpx.Client(base_url=running.url, timeout=30) as client,
        grpc.insecure_channel(running.grpc_target) as channel,
    ):
        stub = GRPCInferenceServiceStub(channel)
        for i, start in enumerate(range(0, len(frame), per_request)):
            part = frame.iloc[start : start + per_request]
            if i % 3 == 0:
                answer = client.post("/v2/models/trips/infer", json=v2_body(part))
            elif i % 3 == 1:
                answer = client.post("/v1/models/trips:predict", json=v1_body(part))
            else:
                stub.ModelInfer(grpc_request(part), timeout=30)
                continue
            assert answer.status_code == 200, answer.text


def cells(part: pd.DataFrame, column: str) -> list[Any]:
    return [None if pd.isna(v) else v for v in part[column].tolist()]


def v1_body(part: pd.DataFrame) -> dict[str, Any]:
    columns = {c: cells(part, c) for c in part.columns}
    rows = zip(*columns.values(), strict=True)
    return {"instances": [dict(zip(columns, row, strict=True)) for row in rows]}


def v2_body(part: pd.DataFrame) -> dict[str, Any]:
    inputs = [
        {"name": c, "shape": [len(part), 1], "datatype": "FP64", "data": cells(part, c)}
        for c in NUMBERS
    ]
    inputs.append(
        {"name": "zone", "shape": [len(part), 1], "datatype": "BYTES", "data": cells(part, "zone")}
    )
    return {"inputs": inputs}


def grpc_request(part: pd.DataFrame) -> pb.ModelInferRequest:
    tensors = [
        pb.ModelInferRequest.InferInputTensor(
            name=c,
            datatype="FP64",
            shape=[len(part), 1],
            contents=pb.InferTensorContents(fp64_contents=part[c].tolist()),
        )
        for c in NUMBERS
    ]
    tensors.append(
        pb.ModelInferRequest.InferInputTensor(
            name="zone",
            datatype="BYTES",
            shape=[len(part), 1],
            contents=pb.InferTensorContents(bytes_contents=[z.encode() for z in part["zone"]]),
        )
    )
    return pb.ModelInferRequest(model_name="trips", inputs=tensors)


def samples(running: RunningServer) -> dict[tuple[str, str], float]:
    """``/metrics``' drift samples: (series name, feature label or "") to value."""
    found = {}
    for line in httpx.get(f"{running.url}/metrics", timeout=10).text.splitlines():
        match = re.match(r"^(predictor_(?:feature|prediction|drift)_\w+)\{([^}]*)\} (\S+)$", line)
        if match:
            feature = re.search(r'feature="([^"]*)"', match.group(2))
            found[(match.group(1), feature.group(1) if feature else "")] = float(match.group(3))
    return found


def settled(running: RunningServer, rows: int) -> dict[tuple[str, str], float]:
    """The drift samples once the window holds ``rows`` rows."""
    return wait_until(
        lambda: (s := samples(running)).get(("predictor_drift_window_rows", "")) == rows and s,
        timeout=30,
        what=f"a drift window of {rows} rows",
    )


def expected_psi(reference: dict[str, Any], values: np.ndarray) -> float:
    """PSI of ``values`` against a numeric feature's reference, computed here independently:
    numpy's histogram over the reference's edges, no missing values, shares floored at 1e-4."""
    edges = np.concatenate([[-np.inf], reference["edges"], [np.inf]])
    counts, _ = np.histogram(values, bins=edges)
    live = np.append(counts / counts.sum(), 0.0)  # the missing bin: none here
    ref = np.asarray(reference["shares"])
    live, ref = np.maximum(live, 1e-4), np.maximum(ref, 1e-4)
    return float(np.sum((live - ref) * np.log(live / ref)))


def drift_report(model: Path, rows: Path) -> subprocess.CompletedProcess[str]:
    """``python -m predictor drift-report`` of ``rows`` against ``model``, as a user runs it."""
    command = ["drift-report", "--model_uri", str(model), "--input", str(rows)]
    return subprocess.run(
        [sys.executable, "-m", "predictor", *command],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def reference_of(bundle: Path) -> dict[str, Any]:
    document = json.loads((bundle / "reference.json").read_text())
    return {f["name"]: f for f in document["features"]}


def test_rows_of_the_reference_distribution_keep_every_index_low(served: RunningServer) -> None:
    send(served, draw(WINDOW, 7))
    found = settled(served, WINDOW)
    for feature in [*NUMBERS, "zone"]:
        assert found[("predictor_feature_drift_psi", feature)] < 0.1, feature
        assert found[("predictor_feature_missing_ratio", feature)] == 0.0
    assert found[("predictor_prediction_drift_psi", "")] < 0.1


def test_a_shifted_feature_drifts_by_the_index_computed_independently(
    served: RunningServer, bundle: Path
) -> None:
    rows = draw(WINDOW, 8, shift=0.5)
    send(served, rows)
    found = settled(served, WINDOW)
    wanted = expected_psi(reference_of(bundle)["distance"], rows["distance"].to_numpy())
    assert wanted > 0.15  # a real shift
    assert found[("predictor_feature_drift_psi", "distance")] == pytest.approx(wanted, abs=0.02)
    for feature in ["fare", "hour", "zone"]:
        assert found[("predictor_feature_drift_psi", feature)] < 0.1, feature


def test_a_column_arriving_empty_raises_its_missing_ratio(served: RunningServer) -> None:
    rows = draw(WINDOW, 9)
    rows.loc[rows.index[WINDOW // 2 :], "fare"] = np.nan  # half the window without a fare
    send(served, rows)
    found = settled(served, WINDOW)
    assert found[("predictor_feature_missing_ratio", "fare")] == pytest.approx(0.5)
    assert found[("predictor_feature_missing_ratio", "distance")] == 0.0
    assert found[("predictor_feature_drift_psi", "fare")] > 0.25  # the missing bin counts too


def test_new_categories_and_out_of_range_numbers_are_counted(
    served: RunningServer, bundle: Path
) -> None:
    rows = draw(WINDOW, 10)
    rows.loc[rows.index[:70], "zone"] = "Newark"  # never in the sample
    distance = reference_of(bundle)["distance"]
    rows.loc[rows.index[100:130], "distance"] = distance["max"] + 100.0
    outside = ((rows["distance"] > distance["max"]) | (rows["distance"] < distance["min"])).sum()
    send(served, rows)
    found = settled(served, WINDOW)
    assert found[("predictor_feature_unseen_category_total", "zone")] == 70
    assert ("predictor_feature_unseen_category_total", "fare") not in found  # a number
    assert outside >= 30
    assert found[("predictor_feature_out_of_range_total", "distance")] == outside


def test_the_report_of_a_file_agrees_with_the_live_figures(
    served: RunningServer, bundle: Path, tmp_path: Path
) -> None:
    rows = draw(WINDOW, 11, shift=0.3)
    rows.loc[rows.index[:40], "zone"] = "Newark"
    rows.loc[rows.index[200:260], "hour"] = np.nan
    rows.to_parquet(tmp_path / "rows.parquet")
    send(served, rows)
    live = settled(served, WINDOW)
    done = drift_report(bundle, tmp_path / "rows.parquet")
    assert done.returncode == 0, done.stderr
    table = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[1:-1]}
    for feature in [*NUMBERS, "zone"]:
        psi, missing, outside, unseen = table[feature]
        assert float(psi) == pytest.approx(live[("predictor_feature_drift_psi", feature)], abs=5e-5)
        assert float(missing) == pytest.approx(
            live[("predictor_feature_missing_ratio", feature)], abs=5e-5
        )
        assert int(outside) == live.get(("predictor_feature_out_of_range_total", feature), 0)
        assert int(unseen) == live.get(("predictor_feature_unseen_category_total", feature), 0)
    assert float(table["prediction"][0]) == pytest.approx(
        live[("predictor_prediction_drift_psi", "")], abs=5e-5
    )
    assert done.stdout.splitlines()[-1] == f"rows: {WINDOW} (refused, not counted: 0)"


def test_a_model_without_a_reference_exports_no_drift_and_says_so(
    server: ServerFactory, bundle: Path
) -> None:
    running = server.start(str(bundle / "model.joblib"), name="trips")
    send(running, draw(300, 12))
    metadata = httpx.get(f"{running.url}/v2/models/trips", timeout=10).json()
    assert metadata["parameters"]["drift"].startswith("off: the model carries no reference")
    page = httpx.get(f"{running.url}/metrics", timeout=10).text
    assert "predictor_feature_drift_psi{" not in page
    assert "predictor_drift_window_rows{" not in page
    watched = server.start(str(bundle), name="trips")
    described = httpx.get(f"{watched.url}/v2/models/trips", timeout=10).json()
    assert described["parameters"]["drift"].startswith("on: each feature against")
    report = drift_report(bundle / "model.joblib", bundle / "model.joblib")
    assert report.returncode == 2
    assert "carries no drift reference" in report.stderr


def test_a_shadowed_model_is_watched_and_shadowed_alike(
    server: ServerFactory, bundle: Path
) -> None:
    """Both taps on one lane: drift sees every row, and the shadow compares every row."""
    running = server.start(
        str(bundle),
        name="trips",
        args=["--drift_window_rows", "600", "--shadow_model_uri", str(bundle / "model.joblib")],
    )
    send(running, draw(600, 13))
    settled(running, 600)

    def compared() -> float | None:
        page = httpx.get(f"{running.url}/metrics", timeout=10).text
        agreed = re.findall(r"^predictor_shadow_predictions_total\{[^}]*\} (\S+)$", page, re.M)
        total = sum(float(v) for v in agreed)
        return total if total == 600 else None

    wait_until(compared, timeout=30, what="the shadow's comparison of all 600 rows")
