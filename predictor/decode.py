"""Turn v1 and v2 request payloads into a feature batch the estimator takes; pure functions.

Every check that can blame the caller happens here, before the estimator runs, and fails with a
``PayloadError`` that says what was expected and what arrived (by row and feature, never echoing
the payload): wrong width, unknown or missing feature names, ragged rows, strings where numbers
belong, NaN or infinity where the estimator cannot take them, an empty batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from predictor.errors import PayloadError, UnsupportedOutputError
from predictor.signature import NUMERIC, PREDICT, PREDICT_PROBA, STRING, Signature

Features = np.ndarray | pd.DataFrame


@dataclass(frozen=True)
class Batch:
    """Decoded rows ready for the estimator, and the outputs the caller asked for."""

    features: Features
    n_rows: int
    outputs: tuple[str, ...]


def requested_outputs(names: Sequence[Any] | None, signature: Signature) -> tuple[str, ...]:
    """Check the output names a caller asked for; ``predict`` when none were named.

    Raises:
        UnsupportedOutputError: an unknown name, or ``predict_proba`` on a regressor.
    """
    if names is None or len(names) == 0:
        return (PREDICT,)
    chosen: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise PayloadError(f"output names must be strings, got {type(name).__name__}")
        if name == PREDICT_PROBA and PREDICT_PROBA not in signature.outputs:
            raise UnsupportedOutputError(
                "predict_proba is only available for classifiers; "
                f"this model is a {signature.task} model (ask for 'predict')"
            )
        if name not in signature.outputs:
            raise UnsupportedOutputError(
                f"unknown output {name!r}; this model gives: {', '.join(signature.outputs)}"
            )
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def decode_v1(body: Any, signature: Signature, *, frame: bool = True) -> Batch:
    """Decode a v1 ``:predict`` body: ``{"instances"|"inputs": [...], "parameters": {...}}``.

    ``frame``: give the estimator a DataFrame when it knows its feature names (scikit-learn
    wants one); a compiled engine takes a plain array.
    """
    if not isinstance(body, dict):
        raise PayloadError(
            f"expected a JSON object with 'instances' or 'inputs', got {_json_type(body)}"
        )
    key = "instances" if "instances" in body else "inputs" if "inputs" in body else None
    if key is None:
        keys = ", ".join(sorted(map(str, body))[:5]) or "none"
        raise PayloadError(f"expected 'instances' or 'inputs' in the body; got keys: {keys}")
    rows = body[key]
    if not isinstance(rows, list):
        raise PayloadError(f"expected '{key}' to be a list of rows, got {_json_type(rows)}")
    if not rows:
        raise PayloadError(f"'{key}' is empty; send at least one row")
    parameters = body.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise PayloadError(f"expected 'parameters' to be an object, got {_json_type(parameters)}")
    outputs = parameters.get("outputs")
    if outputs is not None and not isinstance(outputs, list):
        raise PayloadError(f"expected parameters.outputs to be a list, got {_json_type(outputs)}")
    chosen = requested_outputs(outputs, signature)
    if any(isinstance(r, dict) for r in rows):
        rows = _named_rows_to_lists(rows, signature)
    return Batch(
        features=rows_to_features(rows, signature, frame=frame), n_rows=len(rows), outputs=chosen
    )


def decode_v2(request: InferRequest, signature: Signature, *, frame: bool = True) -> Batch:
    """Decode a v2 request: one ``[N, F]`` tensor (any name) or one ``[N]`` tensor per feature."""
    inputs = request.inputs or []
    if not inputs:
        raise PayloadError("'inputs' is empty; send one [N, F] tensor or one tensor per feature")
    names = signature.feature_names
    outputs = [o.name for o in request.request_outputs] if request.request_outputs else None
    chosen = requested_outputs(outputs, signature)
    per_feature = names is not None and (
        len(inputs) > 1 or (len(names) == 1 and inputs[0].name in names)
    )
    if not per_feature:
        if len(inputs) > 1:
            raise PayloadError(
                f"got {len(inputs)} input tensors but this model has no feature names; "
                f"send one [N, {signature.n_features}] tensor"
            )
        array = _tensor_array(inputs[0])
        if array.ndim == 1 and signature.n_features == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2:
            raise PayloadError(
                f"input '{inputs[0].name}': expected shape [N, {signature.n_features}], "
                f"got {list(array.shape)}"
            )
        if array.shape[0] == 0:
            raise PayloadError(f"input '{inputs[0].name}' has no rows; send at least one")
        return Batch(
            features=_matrix_to_features(array, signature, frame),
            n_rows=array.shape[0],
            outputs=chosen,
        )
    return _decode_v2_columns(inputs, signature, chosen, frame)


def rows_to_features(rows: list[Any], signature: Signature, *, frame: bool = True) -> Features:
    """Turn rows (lists of values in feature order) into what the estimator takes."""
    if signature.all_numeric:
        try:
            array = np.asarray(rows)
        except ValueError:
            array = np.empty(0, dtype=object)  # ragged: the diagnosis below says where
        if array.dtype.kind not in "biuf" or array.ndim != 2:
            array = _diagnose_rows(rows, signature)
        return _matrix_to_features(array.astype(np.float64, copy=False), signature, frame)
    return _matrix_to_features(_diagnose_rows(rows, signature), signature, frame)


def _named_rows_to_lists(rows: list[Any], signature: Signature) -> list[Any]:
    names = signature.feature_names
    if names is None:
        raise PayloadError(
            "rows are objects, but this model was fitted without feature names; "
            f"send each row as a list of {signature.n_features} values"
        )
    expected = set(names)
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            out.append(row)
            continue
        if row.keys() != expected:
            missing = [n for n in names if n not in row]
            unknown = sorted(k for k in row if k not in expected)
            parts = []
            if missing:
                parts.append(f"missing feature(s) {', '.join(map(repr, missing))}")
            if unknown:
                shown = ", ".join(repr(name[:32]) for name in unknown[:3])
                more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
                parts.append(f"unknown feature(s) {shown}{more}")
            raise PayloadError(f"row {i}: {'; '.join(parts)}; the model takes: {', '.join(names)}")
        out.append([row[n] for n in names])
    return out


def _diagnose_rows(rows: list[Any], signature: Signature) -> np.ndarray:
    """Slow path: build the matrix cell by cell, failing at the first cell that does not fit."""
    width = signature.n_features
    dtypes = signature.feature_dtypes
    matrix: list[list[Any]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise PayloadError(
                f"row {i}: expected a list of {width} values or an object of named features, "
                f"got {_json_type(row)}"
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


def _cell(value: Any, kind: str, row: int, col: int, signature: Signature) -> Any:
    where = f"row {row}, feature {signature.feature_label(col)}"
    if kind == STRING:
        if isinstance(value, str):
            return value
        raise PayloadError(f"{where}: expected a string, got {_json_type(value)}")
    if value is None:
        return math.nan
    if isinstance(value, bool | int | float):
        return float(value)
    raise PayloadError(f"{where}: expected a number, got {_json_type(value)}")


def _matrix_to_features(array: np.ndarray, signature: Signature, frame: bool = True) -> Features:
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
    if finite.all():
        return
    bad = np.isinf(array) if signature.allow_nan else ~finite
    if not bad.any():
        return
    row, col = (int(x) for x in np.argwhere(bad)[0])
    value = array[row, col]
    label = signature.feature_label(feature_index[col] if feature_index else col)
    if np.isinf(value):
        raise PayloadError(f"row {row}, feature {label}: got infinity")
    raise PayloadError(
        f"row {row}, feature {label}: got a missing value (NaN/null); "
        "this model cannot take missing values"
    )


def _check_finite_columns(array: np.ndarray, signature: Signature) -> None:
    numeric = [j for j, kind in enumerate(signature.feature_dtypes) if kind == NUMERIC]
    if numeric:
        _check_finite(array[:, numeric].astype(np.float64), signature, numeric)


def _decode_v2_columns(
    inputs: list[InferInput], signature: Signature, chosen: tuple[str, ...], frame: bool
) -> Batch:
    names = signature.feature_names or ()
    by_name = {}
    for tensor in inputs:
        if tensor.name not in names:
            raise PayloadError(
                f"unknown input '{tensor.name}'; the model takes one tensor per feature: "
                f"{', '.join(names)} (or a single [N, {len(names)}] tensor)"
            )
        by_name[tensor.name] = tensor
    missing = [n for n in names if n not in by_name]
    if missing:
        raise PayloadError(
            f"missing input tensor(s) for feature(s) {', '.join(map(repr, missing))}"
        )
    columns = []
    n_rows = None
    for name, kind in zip(names, signature.feature_dtypes, strict=True):
        array = _tensor_array(by_name[name])
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise PayloadError(
                f"input '{name}': expected shape [N] or [N, 1], got {list(array.shape)}"
            )
        if n_rows is not None and array.shape[0] != n_rows:
            raise PayloadError(
                f"input '{name}' has {array.shape[0]} rows, but earlier inputs have {n_rows}"
            )
        n_rows = array.shape[0]
        if kind == NUMERIC and array.dtype.kind not in "biuf":
            raise PayloadError(
                f"input '{name}': expected numbers, got datatype {by_name[name].datatype}"
            )
        if kind == STRING and array.dtype.kind != "O":
            raise PayloadError(
                f"input '{name}': expected strings (BYTES), got {by_name[name].datatype}"
            )
        columns.append(array)
    if not n_rows:
        raise PayloadError("the input tensors have no rows; send at least one")
    if signature.all_numeric:
        matrix = np.column_stack([c.astype(np.float64) for c in columns])
    else:
        matrix = np.empty((n_rows, len(columns)), dtype=object)
        for j, column in enumerate(columns):
            matrix[:, j] = [v.decode() if isinstance(v, bytes) else v for v in column]
    return Batch(
        features=_matrix_to_features(matrix, signature, frame), n_rows=n_rows, outputs=chosen
    )


def _tensor_array(tensor: InferInput) -> np.ndarray:
    try:
        array: np.ndarray = np.asarray(tensor.as_numpy())
    except InvalidInput as e:
        raise PayloadError(
            f"input '{tensor.name}': unsupported datatype {tensor.datatype!r}; "
            "expected FP32, FP64, INT8-64, UINT8-64, BOOL or BYTES"
        ) from e
    except (ValueError, TypeError) as e:
        raise PayloadError(
            f"input '{tensor.name}': data does not fit datatype {tensor.datatype} and shape "
            f"{list(tensor.shape)} (wrong number of values, or values of another type)"
        ) from e
    return array


def _json_type(value: Any) -> str:
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
