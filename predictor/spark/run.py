"""``python -m predictor score --engine spark``: the same run as the local engine's, on Spark.

Every input file (a path, folder, glob, or ``gs://``/``s3://`` prefix, listed as the local engine
lists them) is read by Spark, scored by ``score_dataframe`` and written under the same name, with
its refused rows in ``<name>.errors.<ext>``: the local engine's layout. Files in a bucket travel
through the project's store adapters (no Hadoop connector is needed); on Dataproc or Databricks,
read the lake with Spark itself and call ``score_dataframe``.

The session is local (``local[*]``) unless ``--spark_master`` or ``spark-submit`` gives one.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from predictor.errors import ScoringError
from predictor.loading.gate import load_accepted
from predictor.scoring.joining import FileResult, Report, RunResult, summary
from predictor.scoring.places import list_inputs, local_copy, stores_for
from predictor.scoring.run import ScoreJob, destination_for
from predictor.scoring.tables import FORMATS, table_format
from predictor.settings import Settings
from predictor.spark.scoring import score_dataframe


def run_on_spark(
    job: ScoreJob, settings: Settings, master: str | None, report: Report = print
) -> RunResult:
    """Score ``job.input`` into ``job.output`` on a Spark session; returns what was done.

    Raises:
        ArtifactError: the model must not serve.
        ScoringError: an input or output cannot be used, or pyspark is not installed.
        TooManyRefusedRowsError: more rows than ``job.max_errors`` were refused, over all files.
    """
    loaded = load_accepted(settings)  # a model that must not serve stops the run before Spark
    spark = session(master)
    stores = stores_for(settings.store_deadline_seconds)
    inputs = list_inputs(job.input, stores)
    single = job.output.lower().endswith(FORMATS)
    destination, output_name = destination_for(job.output, single, stores)
    if single and len(inputs) > 1:
        raise ScoringError("--engine spark writes one file per input: give --output a folder")
    result = RunResult()
    with tempfile.TemporaryDirectory(prefix="predictor-spark-") as tmp:
        work = Path(tmp)
        for item in inputs:
            name = output_name if single else item.name
            if destination.has(name):
                report(f"{item.name}: already scored in {job.output}; skipped")
                continue
            path, _ = local_copy(item, work, stores)
            frame = read(spark, path)
            results, refused = score_dataframe(
                frame, outputs=job.outputs, id_column=job.id_column, max_errors=sys.maxsize,
                settings=settings, loaded=loaded,
            )  # fmt: skip
            errors_count = refused.count()
            fmt = table_format(name)
            errors_name = name[: -len(fmt)] + ".errors" + fmt
            errors_where = (
                destination.put(write_one(refused, work / errors_name), errors_name)
                if errors_count
                else None
            )
            where = destination.put(write_one(results, work / name), name)
            done = FileResult(item.name, results.count(), errors_count, 0.0, where, errors_where)
            report(summary(done))
            result.files.append(done)
    result.check_refused(job.max_errors)
    return result


def session(master: str | None) -> Any:
    """The Spark session: the one ``spark-submit`` made, else a new one on ``master``."""
    try:
        from pyspark.sql import SparkSession
    except ModuleNotFoundError as e:
        raise ScoringError(
            "--engine spark needs pyspark: pip install 'kserve-sklearn-predictor[spark]'"
        ) from e
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # executors run this interpreter
    logging.getLogger("py4j").setLevel(logging.WARNING)
    builder = SparkSession.builder.appName("predictor score")
    if master is not None:
        builder = builder.master(master)
    elif "PYSPARK_GATEWAY_PORT" not in os.environ:  # not launched by spark-submit
        builder = builder.master("local[*]")
    return builder.config("spark.ui.enabled", "false").getOrCreate()


def read(spark: Any, path: Path) -> Any:
    """A file as a DataFrame, by its format (CSV with a header; numbers stay text where bad)."""
    reader = spark.read
    fmt = table_format(path.name)
    if fmt == ".csv":
        return reader.csv(str(path), header=True, inferSchema=True)
    if fmt == ".parquet":
        return reader.parquet(str(path))
    return reader.json(str(path))


def write_one(frame: Any, path: Path) -> Path:
    """Write a DataFrame as one file at ``path`` (its format by its name); returns the path."""
    folder = path.with_name(path.name + ".spark")
    writer = frame.coalesce(1).write.mode("overwrite")
    fmt = table_format(path.name)
    if fmt == ".csv":
        writer.csv(str(folder), header=True)
    elif fmt == ".parquet":
        writer.parquet(str(folder))
    else:
        writer.json(str(folder))
    (part,) = [p for p in folder.iterdir() if p.name.startswith("part-")]
    shutil.move(str(part), path)
    shutil.rmtree(folder)
    return path
