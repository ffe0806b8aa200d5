"""Turn estimator results into v1 and v2 responses; pure functions.

v1: ``{"predictions": <first requested output>, "<output>": ..., "classes": [...],
"model_version": "..."}``. v2: one tensor per requested output, ``predict_proba`` carrying its
class labels as the JSON-encoded ``classes`` parameter (a string, so it survives gRPC too).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import orjson
from kserve.constants.constants import GRPC_CONTENT_DATATYPE_MAPPINGS
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from predictor.signature import NUMERIC, PREDICT, PREDICT_PROBA, STRING, Signature

Results = dict[str, np.ndarray]


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
        datatype, data = _output(name, results[name], signature)
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


def encode_v2_grpc(
    results: Results,
    outputs: tuple[str, ...],
    signature: Signature,
    *,
    model_name: str,
    version: str,
    request_id: str | None,
) -> pb.ModelInferResponse:
    """The gRPC response ``encode_v2(...).to_grpc()`` gives, built directly from the arrays."""
    response = pb.ModelInferResponse(
        id=request_id or new_id(), model_name=model_name, model_version=version
    )
    for name in outputs:
        datatype, data = _output(name, results[name], signature)
        tensor = response.outputs.add(name=name, datatype=datatype, shape=data.shape)
        if name == PREDICT_PROBA:
            tensor.parameters["classes"].string_param = classes_parameter(signature)
        flat: list[Any] = data.ravel().tolist()
        if datatype == STRING:
            flat = [str(v).encode() for v in flat]
        getattr(tensor.contents, GRPC_CONTENT_DATATYPE_MAPPINGS[datatype]).extend(flat)
    return response


def new_id() -> str:
    """A random (version 4) UUID string for a response whose request carried no id.

    What ``str(uuid.uuid4())`` gives, without building a ``UUID`` object (a few microseconds).
    """
    digits = os.urandom(16).hex()
    variant = "89ab"[int(digits[16], 16) & 3]
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:]}"


def classes_parameter(signature: Signature) -> str:
    """The class labels as the JSON string carried in ``predict_proba``'s parameters."""
    return orjson.dumps(list(signature.classes or ())).decode()


def _tensor(name: str, values: np.ndarray, signature: Signature) -> InferOutput:
    datatype, array = _output(name, values, signature)
    parameters = {"classes": classes_parameter(signature)} if name == PREDICT_PROBA else None
    output = InferOutput(
        name=name, shape=list(array.shape), datatype=datatype, parameters=parameters
    )
    output.set_data_from_numpy(array, binary_data=False)
    return output


def _output(name: str, values: np.ndarray, signature: Signature) -> tuple[str, np.ndarray]:
    """An output's v2 datatype, and its values as an array of that type."""
    if name == PREDICT_PROBA:
        return NUMERIC, np.ascontiguousarray(values, dtype=np.float64)
    datatype = signature.label_datatype if name == PREDICT else NUMERIC
    return datatype, _labels_as(values, datatype)


def _labels_as(values: np.ndarray, datatype: str) -> np.ndarray:
    if datatype == STRING:
        return np.asarray([str(v) for v in values.tolist()], dtype=object)
    if datatype == "INT64":
        return values.astype(np.int64, copy=False)
    if datatype == "BOOL":
        return values.astype(bool, copy=False)
    return values.astype(np.float64, copy=False)


def _as_list(values: np.ndarray) -> list[Any]:
    return values.tolist()  # type: ignore[no-any-return]
