"""The input schema of a real frame: ``publish --sample FILE`` (CSV or Parquet).

A sample of the data the model will be asked about records each feature's name, how it travels
(``FP64`` for numbers and booleans, ``BYTES`` for text and categoricals) and, for numbers, its
mean. Parquet keeps the types the data had; CSV's are inferred from the text, so a categorical
column of digits reads as numbers there (``--string-features`` corrects it). For a model fitted
on a bare array, the sample's columns also name the features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from predictor.errors import PublishError
from predictor.inference.signature import NUMERIC, STRING, Signature

SAMPLE_ROWS = 10_000
"""Rows read from the sample to infer types (CSV); enough to see every kind of value."""


def read_sample(path: Path) -> pd.DataFrame:
    """The first rows of a CSV or Parquet sample.

    Raises:
        PublishError: the file is missing, of another format, or unreadable.
    """
    if not path.is_file():
        raise PublishError(f"no such sample file: {path}")
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, nrows=SAMPLE_ROWS)
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            batches = pq.ParquetFile(path).iter_batches(batch_size=SAMPLE_ROWS)
            frame: pd.DataFrame = next(batches).to_pandas()
            return frame
    except (ValueError, OSError, StopIteration) as e:
        raise PublishError(f"cannot read the sample {path.name}: {e}") from e
    raise PublishError(f"the sample must be a .csv or .parquet file, got {path.name}")


def sample_features(frame: pd.DataFrame, signature: Signature) -> list[dict[str, Any]]:
    """``[{"name", "dtype", "mean"}]`` for each feature the model takes, from the sample.

    ``mean`` (numeric features only) is what a linear model's explanations are measured from.

    Raises:
        PublishError: the sample lacks a feature, or (for a model without feature names) has
            another number of columns, or a column of a type that is neither number nor text.
    """
    columns = [str(c) for c in frame.columns]
    if signature.feature_names is not None:
        lacking = signature.lacking(columns)
        if lacking is not None:
            raise PublishError(f"the sample {lacking}")
        names = list(signature.feature_names)
    else:
        if signature.n_features is not None and len(columns) != signature.n_features:
            raise PublishError(
                f"the model takes {signature.n_features} features (fitted without names), "
                f"the sample has {len(columns)} columns"
            )
        names = columns
    frame = frame.set_axis(columns, axis=1)
    features: list[dict[str, Any]] = []
    for name in names:
        dtype = _dtype(frame[name])
        feature: dict[str, Any] = {"name": name, "dtype": dtype}
        mean = frame[name].mean() if dtype == NUMERIC else None
        if mean is not None and pd.notna(mean):
            feature["mean"] = float(mean)
        features.append(feature)
    return features


def _dtype(column: pd.Series) -> str:
    kind = column.dtype.kind
    if kind in "biuf":
        return NUMERIC
    if kind in "OSU" or isinstance(column.dtype, pd.CategoricalDtype | pd.StringDtype):
        return STRING
    raise PublishError(
        f"the sample's column {column.name!r} holds {column.dtype}; the model takes numbers "
        "or text (convert it before training, e.g. a date to its parts)"
    )
