"""Batch scoring on Apache Spark with the server's checks: ``score_dataframe``.

The driver loads the model once, with every check the server makes (digest pin, version skew,
bundle acceptance), so that a model that must not serve fails the job before any task runs, with
the same one-line message. Each executor process then loads it once more, with the same checks,
and scores its partitions with ``mapInArrow`` through the code ``score`` and the server use:
``scoring.chunks`` (the row checks, the engines, refused rows with their reasons). Numbers go
from Arrow to the model's matrix and back without pandas.

One pass gives one DataFrame with a ``reason`` column (null for scored rows); it is kept by the
executors (a local checkpoint) and split into the results and the refused rows. ``max_errors`` is
checked on the whole job's count of refused rows, not per partition.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from predictor.errors import TooManyRefusedRowsError
from predictor.inference.batch import requested_outputs
from predictor.inference.signature import Signature
from predictor.loading.gate import LoadedModel, load_accepted
from predictor.scoring.chunks import (
    REASON,
    ROW_NUMBER,
    Columns,
    arrow_matrix,
    input_columns,
    output_columns,
    score_matrix,
    scorer,
)
from predictor.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SPARK_TYPES = {"FP64": "double", "FP32": "double", "INT64": "bigint", "BYTES": "string",
               "BOOL": "boolean"}  # fmt: skip
"""The Spark SQL type of each v2 output datatype."""
ARROW_TYPES = {"double": pa.float64(), "bigint": pa.int64(), "string": pa.string(),
               "boolean": pa.bool_()}  # fmt: skip
"""The Arrow type Spark takes for each of those."""

_LOADED: dict[str, LoadedModel] = {}
"""In each executor process: the model of each settings, loaded and accepted once."""


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
    results = result_columns(signature, wanted)
    schema = ", ".join(
        [f"`{id_name}` {id_type}"]
        + [f"`{name}` {kind}" for name, kind in results]
        + [f"`{REASON}` string"]
    )
    types = {name: ARROW_TYPES[kind] for name, kind in results}
    job = (settings, columns, wanted, types)
    combined = df.select(id_name, *columns.features).mapInArrow(
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


def executor_model(settings: Settings) -> LoadedModel:
    """The model ``settings`` load, with every check, loaded once in this (executor) process."""
    key = settings.model_dump_json()
    if key not in _LOADED:
        _LOADED[key] = load_accepted(settings)
    return _LOADED[key]


def _score_batches(
    batches: Iterator[pa.RecordBatch],
    settings: Settings,
    columns: Columns,
    outputs: tuple[str, ...],
    types: dict[str, pa.DataType],
) -> Iterator[pa.RecordBatch]:
    """Score a partition's batches in an executor, loading the model there once.

    Each batch gives its scored rows (reason null), then its refused rows (outputs null).
    """
    loaded = executor_model(settings)
    signature = loaded.signature
    score = scorer(loaded.engine, signature, outputs)
    id_name = columns.id_column or ROW_NUMBER
    for batch in batches:
        matrix, refused = arrow_matrix(batch, columns, signature)
        rows = score_matrix(matrix, refused, signature, outputs, score)
        ids = batch.column(id_name)
        values = [pa.array(rows.outputs[n], type=t, from_pandas=True) for n, t in types.items()]
        reasons = pa.nulls(len(rows.kept), pa.string())
        yield pa.RecordBatch.from_arrays(
            [ids.take(rows.kept), *values, reasons], names=[id_name, *types, REASON]
        )
        if len(rows.refused):
            empty = [pa.nulls(len(rows.refused), t) for t in types.values()]
            yield pa.RecordBatch.from_arrays(
                [ids.take(rows.refused), *empty, pa.array(rows.reasons, pa.string())],
                names=[id_name, *types, REASON],
            )
