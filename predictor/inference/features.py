"""Turn decoded values into what the estimator takes, checking every cell; pure functions.

Rows (lists of values in feature order) and matrices become a float array, or a DataFrame when
the estimator knows its feature names. Each check blames the caller with a ``PayloadError``
naming the row and feature (never echoing the payload): wrong width, strings where numbers
belong, NaN or infinity where the estimator cannot take them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from predictor.errors import PayloadError
from predictor.inference.signature import NUMERIC, STRING, Signature

Features = np.ndarray | pd.DataFrame


def rows_to_features(rows: list[Any], signature: Signature, *, frame: bool = True) -> Features:
    """Turn rows (lists of values in feature order) into what the estimator takes."""
    if signature.text:
        return documents(rows)
    if signature.all_numeric:
        try:
            array = np.asarray(rows)
        except ValueError:
            array = np.empty(0, dtype=object)  # ragged: the diagnosis below says where
        if array.dtype.kind not in "biuf" or array.ndim != 2:
            array = _diagnose_rows(rows, signature)
        return matrix_to_features(array.astype(np.float64, copy=False), signature, frame)
    return matrix_to_features(_diagnose_rows(rows, signature), signature, frame)


def _diagnose_rows(rows: list[Any], signature: Signature) -> np.ndarray:
    """Slow path: build the matrix cell by cell, failing at the first cell that does not fit."""
    width = signature.n_features
    dtypes = signature.feature_dtypes
    matrix: list[list[Any]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise PayloadError(
                f"row {i}: expected a list of {width} values or an object of named features, "
                f"got {json_type(row)}"
            )
        if width is not None and len(row) != width:
            raise PayloadError(f"row {i}: expected {width} features, got {len(row)}")
        converted = []
        for j, value in enumerate(row):
            kind = dtypes[j] if j < len(dtypes) else NUMERIC
            converted.append(_cell(value, kind, i, j, signature))
        matrix.append(converted)
    if width is None and len({len(r) for r in matrix}) > 1:
        raise PayloadError("rows have different lengths; every row needs the same features")
    dtype = np.float64 if signature.all_numeric else object
    return np.asarray(matrix, dtype=dtype)


def documents(rows: list[Any] | np.ndarray) -> np.ndarray:
    """One document per row for a text model: a string, or a list holding one string.

    Raises:
        PayloadError: a row that is not a string, or an empty (or blank) one.
    """
    texts = np.empty(len(rows), dtype=object)
    for i, row in enumerate(rows):
        if isinstance(row, list | np.ndarray) and len(row) == 1:
            row = row[0]
        if isinstance(row, bytes):
            row = row.decode("utf-8", errors="replace")
        if not isinstance(row, str):
            raise PayloadError(f"row {i}: expected a text (a string), got {json_type(row)}")
        if not row.strip():
            raise PayloadError(f"row {i}: the text is empty")
        texts[i] = row
    return texts


def _cell(value: Any, kind: str, row: int, col: int, signature: Signature) -> Any:
    where = f"row {row}, feature {signature.feature_label(col)}"
    if kind == STRING:
        if isinstance(value, str):
            return value
        if value is None and signature.takes_nan(col):
            return math.nan  # how pandas marks a missing string (read_csv, for one)
        if value is None:
            raise PayloadError(
                f"{where}: got a missing value (null); this model cannot take one there"
            )
        raise PayloadError(f"{where}: expected a string, got {json_type(value)}")
    if value is None:
        return math.nan
    if isinstance(value, bool | int | float):
        return float(value)
    raise PayloadError(f"{where}: expected a number, got {json_type(value)}")


def matrix_to_features(array: np.ndarray, signature: Signature, frame: bool = True) -> Features:
    """Check a ``[N, F]`` matrix (width, types, finiteness) and give it as the estimator takes it.

    ``frame``: a DataFrame when the estimator knows its feature names (scikit-learn wants one);
    a compiled engine takes the plain array.
    """
    width = signature.n_features
    if width is not None and array.shape[1] != width:
        raise PayloadError(f"expected {width} features per row, got {array.shape[1]}")
    if array.dtype.kind == "f":
        _check_finite(array, signature)
    elif array.dtype.kind in "biu":
        array = array.astype(np.float64)
    elif signature.all_numeric:
        raise PayloadError("expected numbers for every feature, got strings")
    else:
        _check_finite_columns(array, signature)
    if signature.float32:
        array = array.astype(np.float32)
    if signature.feature_names is None or (not frame and signature.all_numeric):
        return array
    table = pd.DataFrame(array, columns=list(signature.feature_names))
    if not signature.all_numeric:
        for name, kind in zip(signature.feature_names, signature.feature_dtypes, strict=True):
            if kind == NUMERIC:
                table[name] = table[name].astype(np.float64)
    return table


def _check_finite(
    array: np.ndarray, signature: Signature, feature_index: list[int] | None = None
) -> None:
    finite = np.isfinite(array)
    if np.logical_and.reduce(finite, axis=None):
        return
    columns = feature_index if feature_index else range(array.shape[1])
    takes = np.asarray([signature.takes_nan(j) for j in columns], dtype=bool)
    bad = np.isinf(array) | (np.isnan(array) & ~takes)
    if not bad.any():
        return
    row, col = (int(x) for x in np.argwhere(bad)[0])
    value = array[row, col]
    label = signature.feature_label(feature_index[col] if feature_index else col)
    if np.isinf(value):
        raise PayloadError(f"row {row}, feature {label}: got infinity")
    raise PayloadError(
        f"row {row}, feature {label}: got a missing value (NaN/null); "
        "this model cannot take one there"
    )


def _check_finite_columns(array: np.ndarray, signature: Signature) -> None:
    numeric = [j for j, kind in enumerate(signature.feature_dtypes) if kind == NUMERIC]
    if numeric:
        _check_finite(array[:, numeric].astype(np.float64), signature, numeric)


def json_type(value: Any) -> str:
    """How a JSON value is named in an error message ("a string", "null", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
