"""KServe's v1 protocol: ``{"instances": [...]}`` in, ``{"predictions": [...]}`` out; pure.

Rows are lists of values or objects of named features. The response holds the first requested
output as ``predictions``, every requested output under its name, ``classes`` with
``predict_proba``, and ``model_version``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from predictor.errors import PayloadError
from predictor.inference.batch import Batch, Results, requested_outputs
from predictor.inference.engines import Engine
from predictor.inference.estimator import run_estimator
from predictor.inference.features import json_type, rows_to_features
from predictor.inference.signature import PREDICT_PROBA, Signature
from predictor.protocol.tensors import listed


def answer_v1(engine: Engine, signature: Signature, version: str, body: Any) -> dict[str, Any]:
    """Answer a decoded v1 ``:predict`` body at once (no batching: acceptance, publish)."""
    batch = decode_v1(body, signature, frame=engine.takes_frames)
    results = run_estimator(engine, batch.features, batch.outputs)
    return encode_v1(results, batch.outputs, signature, version)


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
            if signature.takes_mappings and not unknown:  # a key left out is a missing value
                out.append([row.get(n) for n in names])
                continue
            parts = []
            if missing:
                parts.append(f"missing feature(s) {', '.join(map(repr, missing))}")
            if unknown:
                parts.append(f"unknown feature(s) {listed([str(k) for k in unknown])}")
            raise PayloadError(f"row {i}: {'; '.join(parts)}; the model takes: {', '.join(names)}")
        out.append([row[n] for n in names])
    return out


def encode_v1(
    results: Results, outputs: tuple[str, ...], signature: Signature, version: str
) -> dict[str, Any]:
    """Build the v1 ``:predict`` response body."""
    body: dict[str, Any] = {"predictions": _as_list(results[outputs[0]])}
    for name in outputs:
        body[name] = body["predictions"] if name == outputs[0] else _as_list(results[name])
    if PREDICT_PROBA in outputs and signature.classes is not None:
        body["classes"] = list(signature.classes)
    body["model_version"] = version
    return body


def _as_list(values: np.ndarray) -> list[Any]:
    return values.tolist()  # type: ignore[no-any-return]
