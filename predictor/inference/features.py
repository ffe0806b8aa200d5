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
from predictor.inference.categorical import as_categoricals
from predictor.inference.mappings import as_mappings
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
    if not signature.all_numeric:
        if array.dtype.kind != "O":
            raise PayloadError(strings_wanted(signature, "numbers"))
        array = _checked_cells(array, signature)
        _check_finite_columns(array, signature)
    elif array.dtype.kind == "f":
        _check_finite(array, signature)
    elif array.dtype.kind in "biu":
        array = array.astype(np.float64)
    else:
        raise PayloadError(
            "the model takes numbers in every feature; got strings (datatype BYTES): send a "
            "number datatype such as FP64"
        )
    if signature.float32:
        array = array.astype(np.float32)
    names = signature.feature_names
    if signature.takes_mappings and names is not None:
        return as_mappings(array, names)
    if names is None or (not frame and signature.all_numeric and not signature.categoricals):
        return array
    table = pd.DataFrame(array, columns=list(names))
    if not signature.all_numeric:
        for name, kind in zip(names, signature.feature_dtypes, strict=True):
            if kind == NUMERIC:
                table[name] = table[name].astype(np.float64)
    if signature.categoricals:
        table = as_categoricals(table, names, dict(signature.categoricals))
    return table


def strings_wanted(signature: Signature, arrived: str) -> str:
    """Why a tensor of numbers cannot feed a model that takes strings in some columns."""
    kinds = signature.feature_dtypes
    strings = [signature.feature_label(j) for j, kind in enumerate(kinds) if kind == STRING]
    numbers = [signature.feature_label(j) for j, kind in enumerate(kinds) if kind == NUMERIC]
    also = f" and numbers in {_few(numbers)}" if numbers else ""
    return (
        f"the model takes strings in feature(s) {_few(strings)}{also}; got {arrived} for "
        "every feature: send the rows as one BYTES tensor, or one tensor per feature"
    )


def _few(labels: list[str], most: int = 8) -> str:
    more = f" and {len(labels) - most} more" if len(labels) > most else ""
    return ", ".join(labels[:most]) + more


def _checked_cells(array: np.ndarray, signature: Signature) -> np.ndarray:
    """The object matrix checked: strings (or missing markers) and floats, column by column.

    A BYTES tensor carries text: over gRPC its cells arrive as bytes, and a number in it may
    arrive as its text ("2.5"), which a numeric column reads as the number.
    """
    checked = np.empty(array.shape, dtype=object)
    for j, kind in enumerate(signature.feature_dtypes):
        column = array[:, j]
        kinds = set(map(type, column.tolist()))
        if kind == STRING and kinds <= {str}:
            checked[:, j] = column
        elif kind == NUMERIC and kinds <= {float, int}:
            checked[:, j] = column.astype(np.float64)
        else:
            convert = _string_cell if kind == STRING else _number_cell
            checked[:, j] = [convert(v, i, j, signature) for i, v in enumerate(column.tolist())]
    return checked


def _string_cell(value: Any, row: int, col: int, signature: Signature) -> Any:
    if isinstance(value, str):
        return value
    where = f"row {row}, feature {signature.feature_label(col)}"
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError(f"{where}: expected UTF-8 text, got other bytes") from None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if not signature.takes_nan(col):
            raise PayloadError(
                f"{where}: got a missing value (null); this model cannot take one there"
            )
        return signature.missing_marker(col)
    raise PayloadError(f"{where}: expected a string, got {json_type(value)}")


def _number_cell(value: Any, row: int, col: int, signature: Signature) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool | int | float | np.number):
        return float(value)
    where = f"row {row}, feature {signature.feature_label(col)}"
    if isinstance(value, str | bytes):
        try:
            return float(value)
        except ValueError:
            raise PayloadError(f"{where}: expected a number, got text that is not one") from None
    raise PayloadError(f"{where}: expected a number, got {json_type(value)}")


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
