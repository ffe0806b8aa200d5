"""Every place that reads or writes a URI takes ``s3://`` too, against moto's S3 API server.

Covers: ``python -m predictor score`` reading a prefix and a glob of objects and writing a prefix
(each row equal to scikit-learn's answer, a rerun skipping what was scored, the parts folder
gone); the prediction log rotating its files into an S3 prefix, create-only; the bucket-store
protocol's round trip (list, create-only upload, same content, delete) for S3.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import orjson
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LogisticRegression

from predictor.shadow.log import PredictionLog
from predictor.stores.base import bucket_store
from tests.helpers import ServerFactory, run_score, wait_until
from tests.stores import S3Server
from tests.tcp_proxy import TCPProxy

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


def metric_values(url: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name.startswith(("predictor_prediction_log", "predictor_shadow_dropped")):
                found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


def test_an_s3_outage_keeps_the_log_on_disk_and_every_record_is_uploaded_or_counted(
    s3_server: S3Server, s3: tuple[Any, str], tmp_path: Path, server: ServerFactory
) -> None:
    client, name = s3
    x = np.random.default_rng(4).normal(size=(200, 5))
    for model_name, column in (("primary", 0), ("shadow", 1)):
        joblib.dump(
            LogisticRegression().fit(x, (x[:, column] > 0).astype(int)),
            tmp_path / f"{model_name}.joblib",
        )
    proxy = TCPProxy(("127.0.0.1", int(s3_server.url.rsplit(":", 1)[1])))
    env = {**s3_server.env(), "AWS_ENDPOINT_URL": f"http://{proxy.address}"}
    running = server.start(
        str(tmp_path / "primary.joblib"),
        env=env,
        args=[
            "--shadow_model_uri", str(tmp_path / "shadow.joblib"),
            "--prediction_log", f"s3://{name}/log/",
            "--prediction_log_max_seconds", "0.2",
            "--prediction_log_spool_mb", "0.02",
            "--store_deadline_seconds", "1",
        ],
    )  # fmt: skip
    sent = 0

    def send(count: int) -> None:
        nonlocal sent
        with httpx.Client(base_url=running.url, timeout=10) as http:
            for i in range(count):
                row = x[(sent + i) % len(x)].tolist()
                reply = http.post("/v1/models/model:predict", json={"instances": [row]})
                assert reply.status_code == 200, reply.text
                time.sleep(0.01)
        sent += count

    send(40)
    wait_until(lambda: _keys(client, name, "log/"), timeout=20, what="a first upload", every=0.2)
    proxy.cut()
    send(300)  # about 1.2 KB a second of records, for 4 s: past a 20 KB spool
    wait_until(
        lambda: metric_values(running.url)["predictor_prediction_log_records_dropped_total"] > 0,
        timeout=20,
        what="records dropped from a full spool",
        every=0.2,
    )
    during = metric_values(running.url)
    assert during["predictor_prediction_log_upload_failures_total"] >= 1
    assert during["predictor_prediction_log_spooled_bytes"] > 0
    proxy.restore()
    wait_until(
        lambda: metric_values(running.url)["predictor_prediction_log_spooled_bytes"] == 0,
        timeout=90,
        what="the spool to empty once S3 is back",
        every=0.2,
    )
    after = metric_values(running.url)
    assert running.stop() == 0  # the open file is closed and uploaded at shutdown

    uploaded = [
        orjson.loads(line)
        for key in _keys(client, name, "log/")
        for line in client.get_object(Bucket=name, Key=key)["Body"].read().splitlines()
    ]
    dropped = after["predictor_prediction_log_records_dropped_total"]
    print(f"uploaded {len(uploaded)}, dropped {dropped:g}, failures {during}")  # for the docs
    assert after["predictor_shadow_dropped_total"] == 0
    assert len(uploaded) + dropped == sent == 340, (len(uploaded), dropped)
    assert len({(r["id"], r["row"]) for r in uploaded}) == len(uploaded)  # none twice
    assert "dropped" in running.log() and "will retry" in running.log()
    proxy.close()
