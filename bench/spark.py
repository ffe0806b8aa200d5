"""Batch scoring on Spark: ``score_dataframe`` against ``score --engine local`` and MLflow's UDF.

    python bench/spark.py [--rows 1000000] [--rounds 2]

For each model of ``bench/servers.py`` (LogisticRegression and the forest, 20 features) one
Parquet file of ``--rows`` rows with an id column is written once. Then, alternating, each
``--rounds`` times, scoring ``predict`` and writing it as Parquet:

- **local**: ``python -m predictor score --engine local --workers 2`` (a whole process: start-up,
  every check, reading, scoring, writing);
- **ours**: ``score_dataframe`` on one ``local[2]`` session, reading the file with Spark and
  writing with Spark's writer;
- **spark_udf**: MLflow's ``mlflow.pyfunc.spark_udf`` on the same session and file, for the same
  model saved with ``mlflow.sklearn.save_model`` (no digest pin, no version check, no schema).

Before the rounds, one 1-row job per way on the session gives the executors' first load (model
load and checks included). The table gives rows per second and ours/spark_udf.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from servers import FEATURES, ROOT, make_models

sys.path.insert(0, str(ROOT))


def write_parquet(path: Path, rows: int) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        rng.normal(size=(rows, FEATURES)), columns=[f"f{i}" for i in range(FEATURES)]
    )
    frame.insert(0, "id", np.arange(rows))
    frame.to_parquet(path, index=False)


def local_engine(model: Path, data: Path, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "predictor", "score", "--model_uri", str(model), "--input",
         str(data), "--output", f"{out}/", "--outputs", "predict", "--workers", "2",
         "--id_column", "id"],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    return time.perf_counter() - started


def ours(spark: object, model: Path, data: Path, out: Path) -> float:
    from predictor.spark.scoring import score_dataframe

    started = time.perf_counter()
    frame = spark.read.parquet(str(data))  # type: ignore[attr-defined]
    results, _ = score_dataframe(frame, str(model), outputs=("predict",), id_column="id")
    results.write.mode("overwrite").parquet(str(out))
    return time.perf_counter() - started


def with_udf(spark: object, saved: Path, data: Path, out: Path) -> float:
    import mlflow.pyfunc

    started = time.perf_counter()
    frame = spark.read.parquet(str(data))  # type: ignore[attr-defined]
    udf = mlflow.pyfunc.spark_udf(spark, str(saved), result_type="double", env_manager="local")
    features = [c for c in frame.columns if c != "id"]
    scored = frame.select("id", udf(*features).alias("predict"))
    scored.write.mode("overwrite").parquet(str(out))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.environ["PYSPARK_PYTHON"] = sys.executable
    import mlflow.sklearn
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "4g").getOrCreate()
    )  # fmt: skip
    spark.sparkContext.setLogLevel("ERROR")
    work = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    try:
        models = make_models(work / "models")
        data = work / "rows.parquet"
        write_parquet(data, args.rows)
        one = work / "one.parquet"
        write_parquet(one, 1)
        print(
            f"{args.rows:,} rows, 20 features, local[2]; rows per second (median of {args.rounds})"
        )
        print(
            "| model | local engine | ours (Spark) | spark_udf | ours/spark_udf | first 1-row job: ours, spark_udf |"
        )
        print("|---|---|---|---|---|---|")
        for name in ("lr", "rf"):
            bare = models[name] / "model.joblib"
            saved = work / f"mlflow-{name}"
            mlflow.sklearn.save_model(
                joblib.load(bare), str(saved), serialization_format="cloudpickle"
            )
            first_ours = ours(spark, bare, one, work / "out-one")
            first_udf = with_udf(spark, saved, one, work / "out-one-udf")
            times: dict[str, list[float]] = {"local": [], "ours": [], "udf": []}
            for _ in range(args.rounds):
                shutil.rmtree(work / "out-local", ignore_errors=True)
                times["local"].append(local_engine(bare, data, work / "out-local"))
                times["ours"].append(ours(spark, bare, data, work / "out-ours"))
                times["udf"].append(with_udf(spark, saved, data, work / "out-udf"))
            rate = {k: args.rows / statistics.median(v) for k, v in times.items()}
            print(f"| {name} | {rate['local']:,.0f} | {rate['ours']:,.0f} | {rate['udf']:,.0f} | "
                  f"{rate['ours'] / rate['udf']:.2f} | {first_ours:.1f} s, {first_udf:.1f} s |")  # fmt: skip
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
