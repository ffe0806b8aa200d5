"""Every place that reads or writes a URI takes ``s3://`` too, against moto's S3 API server.

Covers: ``python -m predictor score`` reading a prefix and a glob of objects and writing a prefix
(each row equal to scikit-learn's answer, a rerun skipping what was scored, the parts folder
gone); the prediction log rotating its files into an S3 prefix, create-only; the bucket-store
protocol's round trip (list, create-only upload, same content, delete) for S3.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from predictor.shadow.log import PredictionLog
from predictor.stores.base import bucket_store
from tests.helpers import run_score
from tests.stores import S3Server

pytestmark = pytest.mark.timeout(180)

FEATURES = [f"f{i}" for i in range(5)]


def _keys(client: Any, bucket: str, prefix: str) -> list[str]:
    listing = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_score_reads_and_writes_s3_prefixes_and_a_rerun_skips_what_was_scored(
    s3_server: S3Server, s3: tuple[Any, str], tmp_path: Path
) -> None:
    client, name = s3
    rng = np.random.default_rng(11)
    train = pd.DataFrame(rng.normal(size=(500, 5)), columns=FEATURES)
    model = LogisticRegression().fit(train, (train.f0 > 0).astype(int))
    joblib.dump(model, tmp_path / "model.joblib")
    frames = {}
    for file in ("a.csv", "b.csv", "notes.txt"):
        frames[file] = pd.DataFrame(rng.normal(size=(250, 5)), columns=FEATURES)
        client.put_object(Bucket=name, Key=f"in/{file}", Body=frames[file].to_csv(index=False))
    args = ["--model_uri", str(tmp_path / "model.joblib"), "--chunk_rows", "100"]

    first = run_score(
        *args, "--input", f"s3://{name}/in/", "--output", f"s3://{name}/out/", env=s3_server.env()
    )
    again = run_score(
        *args, "--input", f"s3://{name}/in/", "--output", f"s3://{name}/out/", env=s3_server.env()
    )
    glob = run_score(
        *args, "--input", f"s3://{name}/in/b*.csv", "--output", f"s3://{name}/one/b.csv",
        env=s3_server.env(),
    )  # fmt: skip

    assert first.returncode == 0, first.stderr
    assert _keys(client, name, "out/") == ["out/a.csv", "out/b.csv"]  # no parts left, no .txt
    for file in ("a.csv", "b.csv"):
        body = client.get_object(Bucket=name, Key=f"out/{file}")["Body"].read()
        scored = pd.read_csv(io.BytesIO(body))
        assert scored["predict"].tolist() == model.predict(frames[file]).tolist()
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already scored") == 2
    assert glob.returncode == 0, glob.stderr
    body = client.get_object(Bucket=name, Key="one/b.csv")["Body"].read()
    assert (
        pd.read_csv(io.BytesIO(body))["predict"].tolist() == model.predict(frames["b.csv"]).tolist()
    )


def test_the_prediction_log_rotates_its_files_into_an_s3_prefix(s3: tuple[Any, str]) -> None:
    client, name = s3
    log = PredictionLog(f"s3://{name}/log", max_bytes=50, max_seconds=3600, deadline_s=10)
    records = [{"id": f"r{i}", "predict": i % 3} for i in range(12)]

    for start in range(0, 12, 4):
        log.write(records[start : start + 4])  # each write is over 50 bytes: one file each
    log.close()

    keys = _keys(client, name, "log/")
    assert len(keys) == 3 and all(k.startswith("log/predictions-") for k in keys)
    lines = [
        orjson.loads(line)
        for key in keys
        for line in client.get_object(Bucket=name, Key=key)["Body"].read().splitlines()
    ]
    assert sorted(lines, key=lambda r: int(r["id"][1:])) == records


def test_the_s3_bucket_store_speaks_the_protocol(s3: tuple[Any, str], tmp_path: Path) -> None:
    client, name = s3
    store = bucket_store("s3", deadline_s=10)
    local = tmp_path / "part.csv"
    local.write_bytes(b"a,b\n1,2\n")
    other = tmp_path / "other.csv"
    other.write_bytes(b"a,b\n3,4\n")

    assert store.upload_new(local, name, "p/part.csv") is True
    assert store.upload_new(other, name, "p/part.csv") is False  # create-only
    assert store.list_names(name, "p/") == ["p/part.csv"]
    assert store.same_content(local, name, "p/part.csv") is True
    assert store.same_content(other, name, "p/part.csv") is False
    store.delete(name, ["p/part.csv", "p/gone.csv"])
    assert _keys(client, name, "p/") == []
