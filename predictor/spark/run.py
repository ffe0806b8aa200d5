"""``python -m predictor score --engine spark``: the local engine's run, one Spark task per file.

The driver loads and accepts the model (a model that must not serve stops the run before any
task), lists the inputs as the local engine lists them, and gives each input file to one task.
The task runs in an executor the code a local run uses for a file (``scoring.run.score_file``):
it loads the model there once with every check, reads the file from its store, scores it in
chunks into parts under the output, and joins them into ``<name>`` and
``<name>.errors.<ext>``. So the output layout, the errors files and resuming from finished parts
are the local engine's, and no file passes through the driver: on a cluster, give bucket URIs
(``gs://``, ``s3://``) or a filesystem every executor shares.

The driver gathers what each task did, reports it, and checks ``--max_errors`` over all files.
An error a task meets (an input that does not fit the model, a store that refuses) comes back
as the local engine's error, with its one line and exit code.

The session is local (``local[*]``) unless ``--spark_master`` or ``spark-submit`` gives one. To
score a DataFrame Spark has read itself (a table, a lake on Dataproc or Databricks), call
``predictor.spark.scoring.score_dataframe``.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from predictor.errors import PredictorError, ScoringError
from predictor.loading.gate import load_accepted
from predictor.scoring.joining import FileResult, Report, RunResult, join_all, summary
from predictor.scoring.places import InputFile, list_inputs, stores_for
from predictor.scoring.run import ScoreJob, destination_for, score_file
from predictor.scoring.tables import FORMATS
from predictor.settings import Settings
from predictor.spark.scoring import executor_model


def run_on_spark(
    job: ScoreJob, settings: Settings, master: str | None, report: Report = print
) -> RunResult:
    """Score ``job.input`` into ``job.output``, a Spark task per file; returns what was done.

    An ``--output`` that names one file gets every input's rows, joined on the driver from
    the tasks' parts, as a local run joins them.

    Raises:
        ArtifactError: the model must not serve.
        ScoringError: an input or output cannot be used, or pyspark is not installed.
        TooManyRefusedRowsError: more rows than ``job.max_errors`` were refused, over all files.
    """
    load_accepted(settings)  # a model that must not serve stops the run before Spark
    stores = stores_for(settings.store_deadline_seconds)
    inputs = list_inputs(job.input, stores)
    single = job.output.lower().endswith(FORMATS)
    destination, output_name = destination_for(job.output, single, stores)
    result = RunResult()
    if single and destination.has(output_name):
        report(f"{job.output} exists already; nothing to do (outputs are never overwritten)")
        return result
    pending = []
    for item in inputs:
        if not single and destination.has(item.name):
            report(f"{item.name}: already scored in {job.output}; skipped")
        else:
            pending.append(item)
    if pending:
        spark = session(master)
        task = partial(_score_in_executor, replace(job, progress=False), settings)
        outcomes = spark.sparkContext.parallelize(pending, len(pending)).map(task).collect()
        failed = None
        for item, outcome in zip(pending, outcomes, strict=True):
            if isinstance(outcome, PredictorError):
                failed = failed or outcome
            elif outcome is None:
                report(f"{item.name}: no rows; nothing written")
            else:
                result.files.append(outcome)
                if not single:
                    report(summary(outcome))
        if failed is not None:
            raise failed
    if single and result.files:
        with tempfile.TemporaryDirectory(prefix="predictor-spark-") as tmp:
            result = join_all(result, destination, output_name, Path(tmp), report)
    result.check_refused(job.max_errors)
    return result


def _score_in_executor(
    job: ScoreJob, settings: Settings, item: InputFile
) -> FileResult | PredictorError | None:
    """One task: score ``item`` with the model this executor loaded; an error is returned."""
    try:
        stores = stores_for(settings.store_deadline_seconds)
        return score_file(job, settings, executor_model(settings), item, stores)
    except PredictorError as e:  # the driver raises it, as the local engine would
        return e


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
