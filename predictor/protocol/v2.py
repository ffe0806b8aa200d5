"""KServe's v2 protocol over REST: an ``InferRequest`` in, a response document or object out.

Decoding checks every tensor against the model's signature and fails with a ``PayloadError``
that says what was expected and what arrived. ``encode_v2_json`` builds the REST document
straight from the arrays; ``encode_v2`` builds KServe's ``InferResponse`` (binary outputs,
KServe's own callers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse

from predictor.errors import PayloadError
from predictor.inference.batch import Batch, Results, requested_outputs
from predictor.inference.features import matrix_to_features
from predictor.inference.signature import NUMERIC, PREDICT_PROBA, STRING, Signature
from predictor.protocol.tensors import (
    classes_parameter,
    decode_matrix,
    listed,
    misfit,
    new_id,
    output_values,
    takes_columns,
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
    tensor = inputs[0]
    return decode_matrix(
        tensor.name, tensor.datatype, _tensor_array(tensor), signature, chosen, frame
    )


def _decode_v2_columns(
    inputs: list[InferInput], signature: Signature, chosen: tuple[str, ...], frame: bool
) -> Batch:
    names = signature.feature_names or ()
    by_name = {}
    unknown = [tensor.name for tensor in inputs if tensor.name not in names]
    if unknown:
        raise PayloadError(
            f"unknown input tensor(s) {listed(unknown)}; the model takes one tensor per "
            f"feature: {', '.join(names)} (or a single [N, {len(names)}] tensor)"
        )
    for tensor in inputs:
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
        if tensor.datatype == "FP32":  # 1e300 would become infinity, with a warning
            with np.errstate(over="raise"):
                array: np.ndarray = np.asarray(tensor.as_numpy())
        else:
            array = np.asarray(tensor.as_numpy())
    except InvalidInput as e:
        raise PayloadError(
            f"input '{tensor.name}': unsupported datatype {tensor.datatype!r}; "
            "expected FP32, FP64, INT8-64, UINT8-64, BOOL or BYTES"
        ) from e
    except (OverflowError, FloatingPointError) as e:  # 2**63 as INT64, -1 as UINT8, 1e300 as FP32
        raise PayloadError(
            f"input '{tensor.name}': a value is out of the range of datatype {tensor.datatype}"
        ) from e
    except (ValueError, TypeError) as e:
        raise misfit(tensor.name, tensor.datatype, tensor.shape) from e
    return array


def encode_v2(
    results: Results,
    outputs: tuple[str, ...],
    signature: Signature,
    *,
    model_name: str,
    version: str,
    request: InferRequest,
) -> InferResponse:
    """Build the v2 response (REST and gRPC alike) for the outputs the caller asked for."""
    tensors = [_tensor(name, results[name], signature) for name in outputs]
    return InferResponse(
        response_id=request.id or new_id(),
        model_name=model_name,
        model_version=version,
        infer_outputs=tensors,
        use_binary_outputs=bool(request.use_binary_outputs),
        requested_outputs=request.request_outputs,
    )


def encode_v2_json(
    results: Results,
    outputs: tuple[str, ...],
    signature: Signature,
    *,
    model_name: str,
    version: str,
    request_id: str | None,
) -> dict[str, Any]:
    """The v2 REST response as a JSON-ready document, without building an InferResponse first.

    Numeric arrays stay numpy (orjson serialises them directly); labels become lists.
    """
    tensors = []
    for name in outputs:
        datatype, data = output_values(name, results[name], signature)
        tensor: dict[str, Any] = {"name": name, "shape": list(data.shape), "datatype": datatype}
        if name == PREDICT_PROBA:
            tensor["parameters"] = {"classes": classes_parameter(signature)}
        tensor["data"] = data.tolist() if datatype == STRING else np.ascontiguousarray(data).ravel()
        tensors.append(tensor)
    return {
        "id": request_id or new_id(),
        "model_name": model_name,
        "model_version": version,
        "outputs": tensors,
    }


def _tensor(name: str, values: np.ndarray, signature: Signature) -> InferOutput:
    datatype, array = output_values(name, values, signature)
    parameters = {"classes": classes_parameter(signature)} if name == PREDICT_PROBA else None
    output = InferOutput(
        name=name, shape=list(array.shape), datatype=datatype, parameters=parameters
    )
    output.set_data_from_numpy(array, binary_data=False)
    return output


def wants_binary(request: InferRequest) -> bool:
    """Whether any output of a REST request asked for the binary tensor extension."""
    if request.use_binary_outputs:
        return True
    return any(o.binary_data for o in request.request_outputs or [])
