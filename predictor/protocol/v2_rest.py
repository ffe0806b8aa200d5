"""Parse a v2 REST ``infer`` body (JSON, or JSON plus binary tensors) into KServe's InferRequest.

KServe's own route needs a Content-Type header and answers malformed JSON with FastAPI's 422;
this parser takes JSON with or without the header, implements the binary tensor extension
(``inference-header-content-length`` and ``binary_data_size``), and turns every structural
problem into a ``PayloadError`` (400). Pure: bytes in, InferRequest out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from kserve.protocol.infer_type import (
    InferInput,
    InferRequest,
    RequestedOutput,
    deserialize_bytes_tensor,
)
from kserve.utils.numpy_codec import to_np_dtype

from predictor.errors import PayloadError

JSON_LENGTH_HEADER = "inference-header-content-length"


def parse_json(body: bytes) -> Any:
    """Parse a JSON body; a malformed one is the caller's mistake.

    Raises:
        PayloadError: the body is empty or not valid JSON.
    """
    if not body:
        raise PayloadError("the request body is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise PayloadError(f"the request body is not valid JSON: {e.msg} at byte {e.pos}") from e


def parse_infer_body(body: bytes, *, json_length: str | None, model_name: str) -> InferRequest:
    """Build an InferRequest from a v2 REST body.

    Args:
        body: the raw request body.
        json_length: the ``inference-header-content-length`` header, when binary tensors follow.
        model_name: the model named in the path.
    """
    binary = b""
    if json_length is not None:
        try:
            split = int(json_length)
        except ValueError as e:
            raise PayloadError(
                f"{JSON_LENGTH_HEADER} must be an integer, got {json_length!r}"
            ) from e
        if not 0 < split <= len(body):
            raise PayloadError(
                f"{JSON_LENGTH_HEADER} is {split}, but the body has {len(body)} bytes"
            )
        body, binary = body[:split], body[split:]
    document = parse_json(body)
    if not isinstance(document, dict):
        raise PayloadError("expected a JSON object with 'inputs'")
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise PayloadError("expected 'inputs' to be a non-empty list of tensors")
    parameters = _parameters(document.get("parameters"), "parameters")
    default_binary = bool(parameters.get("binary_data_output", False)) if parameters else False
    inputs = []
    offset = 0
    for index, raw in enumerate(raw_inputs):
        tensor, used = _tensor(raw, index, binary, offset)
        inputs.append(tensor)
        offset += used
    if offset != len(binary):
        raise PayloadError(
            f"the body carries {len(binary)} bytes of binary tensor data, "
            f"but the inputs' binary_data_size add up to {offset}"
        )
    return InferRequest(
        model_name=model_name,
        infer_inputs=inputs,
        request_id=_request_id(document.get("id")),
        parameters=parameters or None,
        request_outputs=_outputs(document.get("outputs"), default_binary),
    )


def _tensor(raw: Any, index: int, binary: bytes, offset: int) -> tuple[InferInput, int]:
    if not isinstance(raw, dict):
        raise PayloadError(f"inputs[{index}] must be an object with name, shape, datatype, data")
    name = raw.get("name")
    shape = raw.get("shape")
    datatype = raw.get("datatype")
    if not isinstance(name, str) or not name:
        raise PayloadError(f"inputs[{index}] needs a 'name' string")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise PayloadError(f"input '{name}': 'shape' must be a list of non-negative integers")
    if not isinstance(datatype, str) or to_np_dtype(datatype.upper()) is None:
        raise PayloadError(
            f"input '{name}': unsupported datatype {datatype!r}; expected FP32, FP64, "
            "INT8-64, UINT8-64, BOOL or BYTES"
        )
    datatype = datatype.upper()
    parameters = _parameters(raw.get("parameters"), f"input '{name}' parameters")
    expected = int(np.prod(shape)) if shape else 1
    if "data" in raw and raw["data"] is not None:
        if datatype == "FP16":
            raise PayloadError(f"input '{name}': FP16 data must be sent as binary data")
        data = raw["data"]
        if not isinstance(data, list):
            data = [data]
        return InferInput(name, shape, datatype, data=data, parameters=parameters), 0
    size = parameters.get("binary_data_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise PayloadError(f"input '{name}' has no 'data' and no binary_data_size parameter")
    chunk = binary[offset : offset + size]
    if len(chunk) != size:
        raise PayloadError(
            f"input '{name}': binary_data_size is {size}, but only {len(chunk)} bytes remain"
        )
    array = _binary_array(chunk, name, datatype, shape, expected)
    return InferInput(name, shape, datatype, data=array, parameters=parameters), size


def _binary_array(
    chunk: bytes, name: str, datatype: str, shape: list[int], expected: int
) -> np.ndarray:
    if datatype == "BYTES":
        try:
            array = deserialize_bytes_tensor(chunk)
        except (ValueError, IndexError) as e:
            raise PayloadError(f"input '{name}': malformed BYTES binary data") from e
    else:
        dtype = np.dtype(to_np_dtype(datatype))
        if len(chunk) != expected * dtype.itemsize:
            raise PayloadError(
                f"input '{name}': shape {shape} of {datatype} needs {expected * dtype.itemsize} "
                f"bytes, got {len(chunk)}"
            )
        array = np.frombuffer(chunk, dtype=dtype)
    if array.size != expected:
        raise PayloadError(
            f"input '{name}': shape {shape} needs {expected} values, got {array.size}"
        )
    return np.asarray(array).reshape(shape)


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object")
    return value


def _request_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError("'id' must be a string")
    return value


def _outputs(value: Any, default_binary: bool) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise PayloadError("'outputs' must be a list of {\"name\": ...} objects")
    requested = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise PayloadError(f"outputs[{index}] must be an object with a 'name' string")
        parameters = dict(
            _parameters(item.get("parameters"), f"output '{item['name']}' parameters")
        )
        parameters.setdefault("binary_data", default_binary)
        requested.append(RequestedOutput(name=item["name"], parameters=parameters))
    return requested
