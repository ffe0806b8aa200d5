"""Score one chunk of a table with the request path's own checks; pure functions.

A chunk is a DataFrame read from CSV, Parquet or JSON Lines. Its feature columns become the
matrix a request would have decoded to, and ``matrix_to_features`` and ``run_estimator`` (the
code that answers every request) check and score it. Files carry text where requests carry
JSON types, so a cell that cannot be read as a number where the model takes one is the only
check made here. A chunk the request path refuses is split in halves until each refused row
stands alone: good rows are scored, each bad row gets its reason, and nothing is dropped
without a word.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from predictor.errors import PayloadError, ScoringError
from predictor.inference.batch import Results
from predictor.inference.engines import Engine
from predictor.inference.estimator import run_estimator
from predictor.inference.features import documents, matrix_to_features
from predictor.inference.signature import NUMERIC, STRING, Signature

ROW_NUMBER = "row"
"""The id column of the output when the input names none: the row's number in its file, from 0."""
REASON = "reason"
_ROW_PREFIX = re.compile(r"^row \d+(, |: )")
PER_CLASS = ("predict_proba", "predict_log_proba", "decision_function")


@dataclass(frozen=True)
class Columns:
    """Which input columns feed the model (in its order), and which one names the rows."""

    features: tuple[str, ...]
    id_column: str | None


def input_columns(names: Sequence[str], signature: Signature, id_column: str | None) -> Columns:
    """Match a file's columns to the model's features.

    A model fitted with feature names takes those columns (others are ignored); one fitted on a
    bare array takes every column but the id, in file order; a text model takes the one column
    left besides the id.

    Raises:
        ScoringError: the id column or a feature column is missing, or the count is wrong.
    """
    present = [str(n) for n in names]
    if id_column is not None and id_column not in present:
        raise ScoringError(f"the input has no id column {id_column!r} (--id_column)")
    if signature.feature_names is not None:
        lacking = signature.lacking(present)
        if lacking is not None:
            raise ScoringError(f"the input {lacking}")
        return Columns(signature.feature_names, id_column)
    rest = tuple(n for n in present if n != id_column)
    width = 1 if signature.text else signature.n_features
    if width is not None and len(rest) != width:
        what = "one text column" if signature.text else f"{width} feature columns"
        raise ScoringError(
            f"the model takes {what} (it was fitted without column names), and the input has "
            f"{len(rest)} column(s) besides the id"
        )
    return Columns(rest, id_column)


Score = Callable[[np.ndarray], Results]
"""Check and score a matrix (rows of one chunk) as the request path would."""


def scorer(engine: Engine, signature: Signature, outputs: tuple[str, ...]) -> Score:
    """The request path's decode checks and estimator call, for one chunk's matrix."""

    def score(matrix: np.ndarray) -> Results:
        if signature.text:
            return run_estimator(engine, documents(matrix[:, 0]), outputs)
        features = matrix_to_features(matrix, signature, engine.takes_frames)
        return run_estimator(engine, features, outputs)

    return score


@dataclass(frozen=True)
class ScoredChunk:
    """One chunk's outcome: a row per scored input row, and a row per refused one."""

    table: pd.DataFrame
    errors: pd.DataFrame


@dataclass(frozen=True)
class ScoredRows:
    """One chunk's outcome as columns, by row position.

    The rows scored (``kept``) with their output columns, and the rows refused with reasons.
    """

    kept: np.ndarray
    outputs: dict[str, np.ndarray]
    refused: np.ndarray
    reasons: list[str]


def score_chunk(
    frame: pd.DataFrame,
    columns: Columns,
    signature: Signature,
    outputs: tuple[str, ...],
    score: Score,
    first_row: int,
) -> ScoredChunk:
    """Score the rows of ``frame`` (whose first row is row ``first_row`` of its file)."""
    matrix, refused = to_matrix(frame, columns, signature)
    rows = score_matrix(matrix, refused, signature, outputs, score)
    ids = (
        frame[columns.id_column].to_numpy()
        if columns.id_column is not None
        else np.arange(first_row, first_row + len(frame))
    )
    id_name = columns.id_column or ROW_NUMBER
    table = pd.DataFrame({id_name: ids[rows.kept], **rows.outputs})
    errors = pd.DataFrame({id_name: ids[rows.refused], REASON: rows.reasons})
    return ScoredChunk(table, errors)


def score_matrix(
    matrix: np.ndarray,
    refused: dict[int, str],
    signature: Signature,
    outputs: tuple[str, ...],
    score: Score,
) -> ScoredRows:
    """Score a chunk's matrix, but for the rows already ``refused`` (by position, with reasons)."""
    if refused:
        positions = np.flatnonzero(~np.isin(np.arange(len(matrix)), list(refused)))
    else:
        positions = np.arange(len(matrix))
    scored, more = _score_rows(score, matrix, positions)
    refused = refused | more
    kept = np.concatenate([p for p, _ in scored]) if scored else np.empty(0, dtype=np.intp)
    columns: dict[str, np.ndarray] = {}
    for name in outputs:
        parts = [r[name] for _, r in scored]
        values = np.concatenate(parts) if parts else np.empty(0)
        columns.update(output_columns(name, values, signature))
    order = sorted(refused)
    return ScoredRows(kept, columns, np.array(order, dtype=np.intp), [refused[i] for i in order])


def output_columns(name: str, values: np.ndarray, signature: Signature) -> dict[str, np.ndarray]:
    """One column per output value: ``predict``, ``predict_proba_<class>``, else ``<name>_<j>``."""
    if values.ndim == 1:
        return {name: values}
    width = values.shape[1] if values.ndim == 2 else 0
    labels: Sequence[object] = range(width)
    if name in PER_CLASS and signature.classes is not None and width == len(signature.classes):
        labels = signature.classes
    return {f"{name}_{label}": values[:, j] for j, label in enumerate(labels)}


def to_matrix(
    frame: pd.DataFrame, columns: Columns, signature: Signature
) -> tuple[np.ndarray, dict[int, str]]:
    """The chunk's features as the matrix a request decodes to, and the cells that cannot be.

    Returns:
        The ``[rows, features]`` matrix (float64 when every feature is a number, else objects),
        and a reason for each row (by position) with a cell that is not a number where the
        model takes one.
    """
    refused: dict[int, str] = {}
    n_rows = len(frame)
    numeric_only = signature.all_numeric
    matrix = np.empty((n_rows, len(columns.features)), dtype=np.float64 if numeric_only else object)
    for j, name in enumerate(columns.features):
        column = frame[name]
        kind = signature.feature_dtypes[j] if j < len(signature.feature_dtypes) else NUMERIC
        if signature.text or kind == STRING:
            values = column.to_numpy(dtype=object, copy=True)
            present = column.notna().to_numpy()
            values[present] = column[present].astype(str).to_numpy()
            matrix[:, j] = values
            continue
        if column.dtype.kind in "biuf":
            matrix[:, j] = column.to_numpy(dtype=np.float64)
            continue
        numbers = pd.to_numeric(column, errors="coerce")
        unreadable = np.flatnonzero((column.notna() & numbers.isna()).to_numpy())
        label = signature.feature_label(j)
        for i in unreadable:
            refused.setdefault(int(i), f"feature {label}: expected a number, got text")
        matrix[:, j] = numbers.to_numpy(dtype=np.float64)
    return matrix, refused


def arrow_matrix(
    batch: pa.RecordBatch, columns: Columns, signature: Signature
) -> tuple[np.ndarray, dict[int, str]]:
    """``to_matrix`` for an Arrow batch: numbers are taken from Arrow as they are.

    A batch whose features are all integers, floats or booleans for a model of numbers only
    becomes the float64 matrix without pandas (nulls are NaN, as ``to_matrix`` makes them);
    any other goes through ``to_matrix``.
    """
    arrays = [batch.column(name) for name in columns.features]
    if signature.text or not signature.all_numeric or not all(_numeric(a.type) for a in arrays):
        return to_matrix(batch.to_pandas(), columns, signature)
    matrix = np.empty((batch.num_rows, len(arrays)), dtype=np.float64)
    for j, array in enumerate(arrays):
        values = array.cast(pa.float64()) if pa.types.is_boolean(array.type) else array
        matrix[:, j] = values.to_numpy(zero_copy_only=False)
    return matrix, {}


def _numeric(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
    )


def _score_rows(
    score: Score, matrix: np.ndarray, positions: np.ndarray
) -> tuple[list[tuple[np.ndarray, Results]], dict[int, str]]:
    """Score rows ``positions``; on refusal, halve until each refused row stands alone."""
    if len(positions) == 0:
        return [], {}
    try:
        return [(positions, score(matrix[positions]))], {}
    except PayloadError as e:
        if len(positions) == 1:
            return [], {int(positions[0]): _ROW_PREFIX.sub("", e.reason)}
    middle = len(positions) // 2
    left, left_refused = _score_rows(score, matrix, positions[:middle])
    right, right_refused = _score_rows(score, matrix, positions[middle:])
    return left + right, left_refused | right_refused


def number_columns(columns: Columns, signature: Signature) -> tuple[str, ...]:
    """The input columns the model takes numbers from."""
    if signature.text:
        return ()
    kinds = signature.feature_dtypes
    return tuple(
        name
        for j, name in enumerate(columns.features)
        if (kinds[j] if j < len(kinds) else NUMERIC) == NUMERIC
    )
