"""Turn v1 and v2 request payloads into a feature batch the estimator takes; pure functions.

Every check that can blame the caller happens here or in ``features``, before the estimator runs,
and fails with a ``PayloadError`` that says what was expected and what arrived (by row and
feature, never echoing the payload): wrong width or shape, unknown or missing feature names,
ragged rows, strings where numbers belong, NaN or infinity where the estimator cannot take them,
an empty batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from predictor.errors import PayloadError, UnsupportedOutputError
from predictor.features import Features, json_type, matrix_to_features, rows_to_features
from predictor.signature import NUMERIC, PREDICT, PREDICT_PROBA, STRING, Signature


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
            f"expected a JSON object with 'instances' or 'inputs', got {json_type(body)}"
        )
    key = "instances" if "instances" in body else "inputs" if "inputs" in body else None
    if key is None:
        keys = ", ".join(sorted(map(str, body))[:5]) or "none"
        raise PayloadError(f"expected 'instances' or 'inputs' in the body; got keys: {keys}")
    rows = body[key]
    if not isinstance(rows, list):
        raise PayloadError(f"expected '{key}' to be a list of rows, got {json_type(rows)}")
    if not rows:
        raise PayloadError(f"'{key}' is empty; send at least one row")
    parameters = body.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise PayloadError(f"expected 'parameters' to be an object, got {json_type(parameters)}")
    outputs = parameters.get("outputs")
    if outputs is not None and not isinstance(outputs, list):
        raise PayloadError(f"expected parameters.outputs to be a list, got {json_type(outputs)}")
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
    outputs = [o.name for o in request.request_outputs] if request.request_outputs else None
    chosen = requested_outputs(outputs, signature)
    if takes_columns([tensor.name for tensor in inputs], signature):
        return _decode_v2_columns(inputs, signature, chosen, frame)
    if len(inputs) > 1:
        raise PayloadError(
            f"got {len(inputs)} input tensors but this model has no feature names; "
            f"send one [N, {signature.n_features}] tensor"
        )
    return decode_matrix(inputs[0].name, _tensor_array(inputs[0]), signature, chosen, frame)


def takes_columns(input_names: Sequence[str], signature: Signature) -> bool:
    """Whether v2 inputs with these names are one tensor per feature (else one matrix)."""
    names = signature.feature_names
    return names is not None and (
        len(input_names) > 1 or (len(names) == 1 and input_names[0] in names)
    )


def decode_matrix(
    name: str, array: np.ndarray, signature: Signature, outputs: tuple[str, ...], frame: bool
) -> Batch:
    """Decode the values of one v2 input tensor that holds every feature: ``[N, F]``."""
    if array.ndim == 1 and signature.n_features == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise PayloadError(
            f"input '{name}': expected shape [N, {signature.n_features}], got {list(array.shape)}"
        )
    if array.shape[0] == 0:
        raise PayloadError(f"input '{name}' has no rows; send at least one")
    return Batch(
        features=matrix_to_features(array, signature, frame), n_rows=array.shape[0], outputs=outputs
    )


def misfit(name: str, datatype: str, shape: Sequence[int]) -> PayloadError:
    """The error for a tensor whose values do not fill its shape or do not fit its datatype."""
    return PayloadError(
        f"input '{name}': data does not fit datatype {datatype} and shape {list(shape)} "
        "(wrong number of values, or values of another type)"
    )


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
        features=matrix_to_features(matrix, signature, frame), n_rows=n_rows, outputs=chosen
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
        raise misfit(tensor.name, tensor.datatype, tensor.shape) from e
    return array
