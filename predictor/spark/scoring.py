"""Batch scoring on Apache Spark with the server's checks: ``score_dataframe``.

The driver loads the model once, with every check the server makes (digest pin, version skew,
bundle acceptance), so that a model that must not serve fails the job before any task runs, with
the same one-line message. Each executor process then loads it once more, with the same checks,
and scores its partitions with ``mapInPandas`` through the code ``score`` and the server use:
``scoring.chunks`` (the row checks, the engines, refused rows with their reasons).

One pass gives one DataFrame with a ``reason`` column (null for scored rows); it is kept by the
executors (a local checkpoint) and split into the results and the refused rows. ``max_errors`` is
checked on the whole job's count of refused rows, not per partition.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from predictor.errors import TooManyRefusedRowsError
from predictor.inference.batch import requested_outputs
from predictor.inference.signature import Signature
from predictor.loading.gate import LoadedModel, load_accepted
from predictor.scoring.chunks import (
    REASON,
    ROW_NUMBER,
    Columns,
    input_columns,
    output_columns,
    score_chunk,
    scorer,
)
from predictor.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SPARK_TYPES = {"FP64": "double", "FP32": "double", "INT64": "bigint", "BYTES": "string",
               "BOOL": "boolean"}  # fmt: skip
"""The Spark SQL type of each v2 output datatype."""

_LOADED: dict[str, tuple[Any, Signature]] = {}
"""In each executor process: the model's scorer and signature, by its settings, loaded once."""


def score_dataframe(
    df: DataFrame,
    model_uri: str | None = None,
    *,
    outputs: tuple[str, ...] = (),
    id_column: str | None = None,
    max_errors: int = 0,
    settings: Settings | None = None,
    loaded: LoadedModel | None = None,
) -> tuple[DataFrame, DataFrame]:
    """Score ``df``: a DataFrame of results and one of refused rows (id and reason).

    Results have the id column (``id_column``, else ``row``: the row's number in ``df``) and one
    column per output value, as ``score`` writes them. ``settings`` carries the pin and the
    other model settings (``model_uri`` alone: a ``Settings`` with defaults). ``loaded``: the
    model those settings load, when the caller has loaded it already (on the driver).

    Raises:
        ArtifactError: the model must not serve (before any task runs).
        ScoringError: the DataFrame's columns do not fit the model.
        TooManyRefusedRowsError: more rows than ``max_errors`` were refused, over the whole job.
    """
    settings = settings or Settings(model_uri=model_uri)
    loaded = loaded or load_accepted(settings)
    signature = loaded.signature
    wanted = requested_outputs(list(outputs) or None, signature)
    if id_column is None:
        df = _numbered(df)
    columns = input_columns(df.columns, signature, id_column or ROW_NUMBER)
    id_name = id_column or ROW_NUMBER
    id_type = dict(df.dtypes)[id_name]
    schema = ", ".join(
        [f"`{id_name}` {id_type}"]
        + [f"`{name}` {kind}" for name, kind in result_columns(signature, wanted)]
        + [f"`{REASON}` string"]
    )
    job = (settings, columns, wanted)
    combined = df.select(id_name, *columns.features).mapInPandas(
        lambda batches: _score_batches(batches, *job), schema
    )
    # Scored once, kept by the executors (memory, else disk), and released with the DataFrames.
    # Not persist(): Spark would share that cache with any later job of the same plan, and
    # keep it until the session ends.
    combined = combined.localCheckpoint(eager=True)
    refused = combined.where(combined[REASON].isNotNull()).select(id_name, REASON)
    count = refused.count()
    if count > max_errors:
        raise TooManyRefusedRowsError(
            f"{count} row(s) could not be scored, more than --max_errors {max_errors}"
        )
    return combined.where(combined[REASON].isNull()).drop(REASON), refused


def result_columns(signature: Signature, outputs: tuple[str, ...]) -> list[tuple[str, str]]:
    """The results' columns besides the id, as ``score`` names them, with their Spark types."""
    found = []
    for name in outputs:
        spec = signature.output(name)
        empty = np.empty((0, *spec.row_shape))
        kind = SPARK_TYPES.get(spec.datatype, "string")
        found += [(column, kind) for column in output_columns(name, empty, signature)]
    return found


def _numbered(df: DataFrame) -> DataFrame:
    """``df`` with a ``row`` column: each row's number, from 0, in the DataFrame's order."""
    numbered = df.rdd.zipWithIndex().map(lambda pair: (*pair[0], pair[1]))
    return numbered.toDF([*df.columns, ROW_NUMBER])


def _score_batches(
    batches: Iterator[pd.DataFrame], settings: Settings, columns: Columns, outputs: tuple[str, ...]
) -> Iterator[pd.DataFrame]:
    """Score a partition's batches in an executor, loading the model there once."""
    key = settings.model_dump_json()
    if key not in _LOADED:
        loaded = load_accepted(settings)
        _LOADED[key] = (scorer(loaded.engine, loaded.signature, outputs), loaded.signature)
    score, signature = _LOADED[key]
    for batch in batches:
        scored = score_chunk(batch, columns, signature, outputs, score, 0)
        yield scored.table.assign(**{REASON: None})
        if len(scored.errors):  # the outputs left empty (null), by name
            refused = scored.errors.copy()
            for column in scored.table.columns:
                if column not in refused:
                    refused[column] = pd.Series([None] * len(refused), dtype=object)
            yield refused
