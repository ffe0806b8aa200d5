"""Explanations as v2 outputs, over REST and gRPC: ``contributions`` and ``base_value``.

The server routes a v2 request that asks for either here (on an explain worker), not down the
prediction lanes.

Asked for like any other output. ``contributions`` is ``[N, F]`` FP64: each row's share per
request feature, for its predicted class; its parameters name the features, the output
explained, the method, whether it is exact and each row's class (JSON strings, as gRPC's scalar
parameters carry them). ``base_value`` is ``[N]`` FP64. They are the numbers v1 ``:explain``
gives for the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.infer_type import InferRequest

from predictor.explain.service import Explained, Explanations
from predictor.inference.signature import dense
from predictor.protocol.v2 import decode_v2, encode_v2_json
from predictor.protocol.v2_grpc import encode_v2_grpc, request_from_grpc

CONTRIBUTIONS = "contributions"
BASE_VALUE = "base_value"
EXPLAIN_OUTPUTS = (CONTRIBUTIONS, BASE_VALUE)


def asks_explanation(names: Iterable[str]) -> bool:
    """Whether any of the requested output ``names`` is an explanation."""
    return any(name in EXPLAIN_OUTPUTS for name in names)


def explain_v2_json(
    explanations: Explanations, request: InferRequest, *, model_name: str, version: str
) -> dict[str, Any]:
    """The v2 REST document: the plain outputs asked for, then the explanation outputs."""
    asked, plain, results, explained = _answer(explanations, request)
    document = encode_v2_json(
        results,
        plain,
        explanations.signature,
        model_name=model_name,
        version=version,
        request_id=request.id,
    )
    tensors = {t["name"]: t for t in document["outputs"]}
    for name, (data, parameters) in _explain_tensors(explanations, explained).items():
        tensor: dict[str, Any] = {"name": name, "shape": list(data.shape), "datatype": "FP64"}
        if parameters:
            tensor["parameters"] = parameters
        tensor["data"] = data.ravel()
        tensors[name] = tensor
    document["outputs"] = [tensors[name] for name in asked]
    return document


def explain_grpc(
    explanations: Explanations, message: pb.ModelInferRequest, *, model_name: str, version: str
) -> pb.ModelInferResponse:
    """The gRPC response: the plain outputs asked for, then the explanation outputs."""
    request = request_from_grpc(message)
    asked, plain, results, explained = _answer(explanations, request)
    response = encode_v2_grpc(
        results,
        plain,
        explanations.signature,
        model_name=model_name,
        version=version,
        request_id=message.id or None,
    )
    by_name = {t.name: t for t in response.outputs}
    for name, (data, parameters) in _explain_tensors(explanations, explained).items():
        tensor = pb.ModelInferResponse.InferOutputTensor(
            name=name, datatype="FP64", shape=list(data.shape)
        )
        for key, value in parameters.items():
            tensor.parameters[key].string_param = value
        tensor.contents.fp64_contents.extend(data.ravel().tolist())
        by_name[name] = tensor
    del response.outputs[:]
    response.outputs.extend(by_name[name] for name in asked)
    return response


def _answer(
    explanations: Explanations, request: InferRequest
) -> tuple[list[str], tuple[str, ...], dict[str, np.ndarray], Explained]:
    """Decode as ``infer`` does, compute the plain outputs asked for, and explain the rows.

    Returns every output asked for, the plain ones among them, their values and the
    explanations.
    """
    asked = [o.name for o in request.request_outputs or []]
    wanted = [o for o in request.request_outputs or [] if o.name not in EXPLAIN_OUTPUTS]
    request.request_outputs = wanted or None
    batch = decode_v2(request, explanations.signature, frame=True)
    explained = explanations.attribute(batch)
    plain = tuple(o.name for o in wanted)
    results = {n: dense(getattr(explanations.estimator, n)(batch.features)) for n in plain}
    return asked, plain, results, explained


def _explain_tensors(
    explanations: Explanations, explained: Explained
) -> dict[str, tuple[np.ndarray, dict[str, str]]]:
    plan = explanations.ready_plan()
    rows = range(len(explained.predictions))
    chosen = [explained.chosen(i) for i in rows]
    contributions = np.asarray(
        [explained.shares[i, :, k] for i, k in zip(rows, chosen, strict=True)]
    )
    base = np.asarray(
        [explained.base[i, k] for i, k in zip(rows, chosen, strict=True)], dtype=np.float64
    )
    parameters = {
        "features": orjson.dumps(list(explanations.features)).decode(),
        "output": plan.output,
        "method": plan.method,
        "exact": str(plan.exact).lower(),
    }
    if explained.labels is not None:
        labels = [explained.labels[k] for k in chosen]
        parameters["classes"] = orjson.dumps(labels, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return {
        CONTRIBUTIONS: (contributions.reshape(len(chosen), -1), parameters),
        BASE_VALUE: (base, {}),
    }
