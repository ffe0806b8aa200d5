"""Batch scoring on Spark (``local[2]``, pyspark with Debian's Java) against the local engine.

Covers: ``score_dataframe``'s results and refused rows equal to ``score --engine local``'s, row for
row with the ids kept, over several partitions (and row numbers when there is no id column);
``max_errors`` over the whole job, not per partition; a wrong digest pin failing the job with the
local engine's line; and ``score --engine spark`` reading and writing Parquet through the S3 server.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from predictor.errors import TooManyRefusedRowsError
from predictor.spark.scoring import score_dataframe
from tests.helpers import run_score
from tests.stores import S3Server
from tests.tcp_proxy import TCPProxy

pytestmark = pytest.mark.timeout(300)

FEATURES = [f"f{i}" for i in range(4)]
BROKEN = [10, 700, 1400, 2100]
"""Rows with a cell that is no number: one in each of four partitions of 2,800 rows."""


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    before = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("predictor tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    try:
        yield session
    finally:
        session.stop()
        if before is None:
            os.environ.pop("PYSPARK_PYTHON", None)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LogisticRegression]:
    x = pd.DataFrame(np.random.default_rng(1).normal(size=(500, 4)), columns=FEATURES)
    fitted = LogisticRegression().fit(x, (x.f0 + x.f2 > 0).astype(int))
    path = tmp_path_factory.mktemp("model") / "model.joblib"
    joblib.dump(fitted, path)
    return path, fitted


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = pd.DataFrame(np.random.default_rng(2).normal(size=(2800, 4)), columns=FEATURES).astype(
        object
    )
    frame.loc[BROKEN, "f1"] = "abc"
    frame.insert(0, "id", [f"r{i}" for i in range(len(frame))])
    path = tmp_path_factory.mktemp("rows") / "rows.csv"
    frame.to_csv(path, index=False)
    return path


def local_engine(
    model: Path, rows: Path, out: Path, *extra: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    done = run_score("--model_uri", str(model), "--input", str(rows), "--output", f"{out}/",
                     "--outputs", "predict,predict_proba", "--max_errors", "10", *extra)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return pd.read_csv(out / rows.name), pd.read_csv(out / "rows.errors.csv")


def test_results_and_refused_rows_equal_the_local_engines(
    spark: Any, model: tuple[Path, LogisticRegression], rows: Path, tmp_path: Path
) -> None:
    local, local_errors = local_engine(model[0], rows, tmp_path / "local", "--id_column", "id")
    frame = spark.read.csv(str(rows), header=True, inferSchema=True).repartition(4, "id")
    assert frame.rdd.getNumPartitions() == 4
    results, refused = score_dataframe(
        frame, str(model[0]), outputs=("predict", "predict_proba"), id_column="id", max_errors=10
    )
    got = results.toPandas().sort_values("id", key=lambda s: s.str[1:].astype(int))
    assert list(got.columns) == list(local.columns)
    assert got["id"].tolist() == local["id"].tolist()
    assert got["predict"].tolist() == local["predict"].tolist()
    for column in ("predict_proba_0", "predict_proba_1"):
        np.testing.assert_allclose(got[column], local[column], rtol=0, atol=1e-12)
    errors = refused.toPandas().sort_values("id", key=lambda s: s.str[1:].astype(int))
    assert errors.to_dict("list") == local_errors.to_dict("list")
    assert errors["reason"].tolist() == ["feature 'f1': expected a number, got text"] * 4


def test_without_an_id_column_rows_are_numbered_as_the_local_engine_numbers_them(
    spark: Any, model: tuple[Path, LogisticRegression], rows: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "bare" / "rows.csv"
    bare.parent.mkdir()
    pd.read_csv(rows).drop(columns="id").to_csv(bare, index=False)
    local, local_errors = local_engine(model[0], bare, tmp_path / "local")
    frame = spark.read.csv(str(bare), header=True, inferSchema=True)
    results, refused = score_dataframe(
        frame, str(model[0]), outputs=("predict", "predict_proba"), max_errors=10
    )
    got = results.toPandas().sort_values("row")
    assert got["row"].tolist() == local["row"].tolist()
    assert got["predict"].tolist() == local["predict"].tolist()
    assert sorted(refused.toPandas()["row"]) == local_errors["row"].tolist() == BROKEN


def test_max_errors_holds_over_the_whole_job(
    spark: Any, model: tuple[Path, LogisticRegression], rows: Path
) -> None:
    frame = spark.read.csv(str(rows), header=True, inferSchema=True).repartition(4, "id")
    per_partition = (
        frame.rdd.glom()
        .map(
            lambda part: sum(1 for r in part if not isinstance(r["f1"], float) and r["f1"] == "abc")
        )
        .collect()
    )
    assert max(per_partition) < 4  # each partition alone is within the limit below
    with pytest.raises(
        TooManyRefusedRowsError, match=r"^4 row\(s\) could not be scored, more than --max_errors 3$"
    ):
        score_dataframe(frame, str(model[0]), id_column="id", max_errors=3)
    results, refused = score_dataframe(frame, str(model[0]), id_column="id", max_errors=4)
    assert (results.count(), refused.count()) == (2796, 4)


def test_a_wrong_pin_fails_the_job_with_the_local_engines_line(
    model: tuple[Path, LogisticRegression], rows: Path, tmp_path: Path
) -> None:
    said = []
    for engine in ("local", "spark"):
        done = run_score("--engine", engine, "--spark_master", "local[2]", "--model_uri",
                         str(model[0]), "--model_sha256", "0" * 64, "--input", str(rows),
                         "--output", f"{tmp_path / engine}/")  # fmt: skip
        assert done.returncode == 1, done.stderr
        said.append(done.stderr.strip().splitlines()[-1])
    assert said[0] == said[1]
    assert said[0].startswith("predictor score: ") and "but the deployer pinned 0000" in said[0]
    assert not (tmp_path / "spark").exists()


def test_parquet_in_and_out_through_the_s3_server(
    s3_server: S3Server, s3: tuple[Any, str], model: tuple[Path, LogisticRegression], tmp_path: Path
) -> None:
    client, bucket = s3
    frame = pd.DataFrame(np.random.default_rng(3).normal(size=(1000, 4)), columns=FEATURES)
    frame.insert(0, "id", [f"p{i}" for i in range(len(frame))])
    body = io.BytesIO()
    frame.to_parquet(body, index=False)
    client.put_object(Bucket=bucket, Key="in/day1.parquet", Body=body.getvalue())
    done = run_score("--engine", "spark", "--spark_master", "local[2]", "--model_uri",
                     str(model[0]), "--input", f"s3://{bucket}/in/", "--output",
                     f"s3://{bucket}/out/", "--id_column", "id", env=s3_server.env())  # fmt: skip
    assert done.returncode == 0, done.stderr
    listing = client.list_objects_v2(Bucket=bucket, Prefix="out/")
    assert [o["Key"] for o in listing["Contents"]] == ["out/day1.parquet"]  # no errors file
    scored = pd.read_parquet(
        io.BytesIO(client.get_object(Bucket=bucket, Key="out/day1.parquet")["Body"].read())
    )
    scored = scored.sort_values("id", key=lambda s: s.str[1:].astype(int))
    assert scored["id"].tolist() == frame["id"].tolist()
    assert scored["predict"].tolist() == model[1].predict(frame[FEATURES]).tolist()


def test_no_input_byte_passes_through_the_driver(
    s3_server: S3Server, s3: tuple[Any, str], model: tuple[Path, LogisticRegression]
) -> None:
    """On a cluster the driver's disk is not the executors': each task reads and writes the
    store itself. The driver reaches S3 through a proxy that counts what it receives; the
    executors reach it directly (``spark.executorEnv``)."""
    client, bucket = s3
    frame = pd.DataFrame(np.random.default_rng(4).normal(size=(30_000, 4)), columns=FEATURES)
    frame.insert(0, "id", np.arange(len(frame)))
    body = io.BytesIO()
    frame.to_parquet(body, index=False)
    client.put_object(Bucket=bucket, Key="lake/day2.parquet", Body=body.getvalue())
    proxy = TCPProxy(("127.0.0.1", int(s3_server.url.rsplit(":", 1)[1])))
    env = {**s3_server.env(), "AWS_ENDPOINT_URL": f"http://{proxy.address}"}
    env["PYSPARK_SUBMIT_ARGS"] = (
        f"--conf spark.executorEnv.AWS_ENDPOINT_URL={s3_server.url} pyspark-shell"
    )
    try:
        done = run_score("--engine", "spark", "--spark_master", "local[2]", "--model_uri",
                         str(model[0]), "--input", f"s3://{bucket}/lake/", "--output",
                         f"s3://{bucket}/scored/", "--id_column", "id", env=env)  # fmt: skip
    finally:
        proxy.close()
    assert done.returncode == 0, done.stderr
    assert "day2.parquet: 30000 rows scored, 0 refused" in done.stdout
    scored = pd.read_parquet(
        io.BytesIO(client.get_object(Bucket=bucket, Key="scored/day2.parquet")["Body"].read())
    )
    assert sorted(scored["id"]) == list(range(30_000))
    assert 0 < proxy.received < len(body.getvalue()) // 10  # listings only


def test_spark_submit_runs_score_on_the_session_it_makes(
    model: tuple[Path, LogisticRegression], rows: Path, tmp_path: Path
) -> None:
    import subprocess

    from predictor.cli import spark_submit

    local, local_errors = local_engine(model[0], rows, tmp_path / "local", "--id_column", "id")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTOR_")}
    env["PYSPARK_PYTHON"] = sys.executable
    done = subprocess.run(
        [str(Path(sys.executable).with_name("spark-submit")), "--master", "local[2]",
         spark_submit.__file__, "--model_uri", str(model[0]), "--input", str(rows),
         "--output", f"{tmp_path / 'submitted'}/", "--id_column", "id",
         "--outputs", "predict,predict_proba", "--max_errors", "10"],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "done: 1 file(s), 2796 rows scored, 4 refused" in done.stdout
    scored = pd.read_csv(tmp_path / "submitted" / "rows.csv")
    scored = scored.sort_values("id", key=lambda s: s.str[1:].astype(int))
    assert scored["id"].tolist() == local["id"].tolist()
    assert scored["predict"].tolist() == local["predict"].tolist()
    errors = pd.read_csv(tmp_path / "submitted" / "rows.errors.csv")
    assert sorted(errors["id"]) == sorted(local_errors["id"])


def test_each_file_is_a_task_and_max_errors_holds_over_all_files_as_locally(
    model: tuple[Path, LogisticRegression], rows: Path, tmp_path: Path
) -> None:
    """Two files of 2 refused rows each, against --max_errors 3.

    Both engines write both files and their errors, then fail with the same line; a rerun skips
    the files scored.
    """
    folder = tmp_path / "in"
    folder.mkdir()
    frame = pd.read_csv(rows)
    frame.iloc[:1400].to_csv(folder / "a.csv", index=False)
    frame.iloc[1400:].to_csv(folder / "b.csv", index=False)
    said = {}
    for engine in ("local", "spark"):
        args = ("--engine", engine, "--spark_master", "local[2]", "--model_uri", str(model[0]),
                "--input", str(folder), "--output", f"{tmp_path / engine}/", "--id_column", "id",
                "--max_errors", "3")  # fmt: skip
        done = run_score(*args)
        assert done.returncode == 1, done.stderr
        said[engine] = done.stderr.strip().splitlines()[-1]
        out = tmp_path / engine
        assert sorted(p.name for p in out.iterdir()) == [
            "a.csv", "a.errors.csv", "b.csv", "b.errors.csv"
        ]  # fmt: skip
        assert "a.csv: 1398 rows scored, 2 refused" in done.stdout
        assert "b.csv: 1398 rows scored, 2 refused" in done.stdout
        again = run_score(*args)
        assert "a.csv: already scored" in again.stdout and "b.csv: already scored" in again.stdout
    assert said["spark"] == said["local"].replace(str(tmp_path / "local"), str(tmp_path / "spark"))
    assert said["spark"].startswith("predictor score: 4 row(s) could not be scored, more than")
    for name in ("a.csv", "b.errors.csv"):
        spark_rows = pd.read_csv(tmp_path / "spark" / name)
        pd.testing.assert_frame_equal(spark_rows, pd.read_csv(tmp_path / "local" / name))
    for engine in ("local", "spark"):  # one output file for both inputs, joined
        done = run_score("--engine", engine, "--spark_master", "local[2]", "--model_uri",
                         str(model[0]), "--input", str(folder), "--output",
                         str(tmp_path / f"{engine}-all.parquet"), "--id_column", "id",
                         "--max_errors", "4")  # fmt: skip
        assert done.returncode == 0, done.stderr
    joined = pd.read_parquet(tmp_path / "spark-all.parquet")
    pd.testing.assert_frame_equal(joined, pd.read_parquet(tmp_path / "local-all.parquet"))
    assert len(joined) == 2796


def test_an_input_that_does_not_fit_fails_in_its_task_with_the_local_engines_line(
    model: tuple[Path, LogisticRegression], rows: Path, tmp_path: Path
) -> None:
    lacking = tmp_path / "in" / "rows.csv"
    lacking.parent.mkdir()
    pd.read_csv(rows).drop(columns="f3").to_csv(lacking, index=False)
    said = []
    for engine in ("local", "spark"):
        done = run_score("--engine", engine, "--spark_master", "local[2]", "--model_uri",
                         str(model[0]), "--input", str(lacking.parent), "--output",
                         f"{tmp_path / engine}/", "--id_column", "id")  # fmt: skip
        assert done.returncode == 2, done.stderr
        said.append(done.stderr.strip().splitlines()[-1])
    assert said[0] == said[1]
    assert said[0] == (
        "predictor score: the input lacks the feature column(s) f3; the model takes: f0, f1, f2, f3"
    )


def test_one_session_scores_the_same_model_for_other_outputs(
    spark: Any, model: tuple[Path, LogisticRegression], rows: Path
) -> None:
    """The executors keep the model they loaded, not the outputs a job asked of it."""
    frame = spark.read.csv(str(rows), header=True, inferSchema=True)
    uri = str(model[0])
    first, _ = score_dataframe(frame, uri, outputs=("predict",), id_column="id", max_errors=4)
    assert first.columns == ["id", "predict"] and first.count() == 2796
    second, _ = score_dataframe(
        frame, uri, outputs=("predict_proba",), id_column="id", max_errors=4
    )
    assert second.columns == ["id", "predict_proba_0", "predict_proba_1"]
    got = second.toPandas().set_index("id").sort_index()
    clean = pd.read_csv(rows).drop(index=BROKEN).set_index("id").sort_index()
    expected = model[1].predict_proba(clean[FEATURES].astype(float))
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=0, atol=1e-12)
