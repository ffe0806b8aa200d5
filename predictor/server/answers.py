"""The request path per transport: decode with the chosen lane's model, answer, encode.

Each function takes the strategy, asks it for the lane that answers, decodes the request with
that lane's signature (and whether its engine takes frames), awaits the lane's answer and
encodes it. Which strategy runs is never asked: the ``Answer`` says which version answered and
the id a feedback names, when there is one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.infer_type import InferRequest, InferResponse

from predictor.errors import ModelNotFoundError
from predictor.inference.batch import Batch
from predictor.protocol.v1 import decode_v1, encode_v1
from predictor.protocol.v2 import decode_v2, encode_v2, encode_v2_json, wants_binary
from predictor.protocol.v2_grpc import decode_grpc, encode_v2_grpc
from predictor.serving.strategy import Answer, Lane, Strategy


class RestAnswer(NamedTuple):
    """A REST answer, and who gave it (for the headers and the metrics)."""

    body: dict[str, Any] | bytes
    json_length: int | None
    """The JSON part's length when ``body`` is a binary v2 answer (bytes); None for JSON."""
    version: str
    """The version that answered."""
    feedback_id: str | None
    """The id a feedback for this answer names (a bandit's); None where none is taken."""


def lane_for(strategy: Strategy, version: str | None, name: str, key: str | None = None) -> Lane:
    """The lane that answers: the strategy's choice (``key``: a sticky key), or the named version.

    Raises:
        ModelNotFoundError: no model of that version answers here (404).
    """
    if version is None:
        return strategy.choose(key)
    for lane in strategy.lanes():
        if lane.loaded.version == version:
            return lane
    versions = [lane.loaded.version for lane in strategy.lanes()]
    served: str | list[str] = versions[0] if len(versions) == 1 else versions
    raise ModelNotFoundError(f"model {name} has no such version; it serves {served!r}")


async def answer_v1(strategy: Strategy, body: Any, key: str | None = None) -> RestAnswer:
    """Answer a parsed v1 ``:predict`` body."""
    lane = strategy.choose(key)
    loaded = lane.loaded
    batch = decode_v1(body, loaded.signature, frame=loaded.engine.takes_frames)
    answer = await lane.answer(batch, None)
    document = encode_v1(answer.results, batch.outputs, loaded.signature, answer.version)
    if answer.feedback_id is not None:
        document["id"] = answer.feedback_id
    return RestAnswer(document, None, answer.version, answer.feedback_id)


async def answer_v2(
    strategy: Strategy, name: str, request: InferRequest, key: str | None = None
) -> InferResponse:
    """Answer a v2 InferRequest with KServe's InferResponse (binary outputs, KServe's callers)."""
    response, _ = await _infer_v2(strategy, name, request, None, key)
    return response


async def _infer_v2(
    strategy: Strategy,
    name: str,
    request: InferRequest,
    version: str | None = None,
    key: str | None = None,
) -> tuple[InferResponse, str | None]:
    lane = lane_for(strategy, version, name, key)
    loaded = lane.loaded
    batch = decode_v2(request, loaded.signature, frame=loaded.engine.takes_frames)
    answer = await lane.answer(batch, request.id)
    return _response(answer, batch, lane, name, request), answer.feedback_id


async def answer_v2_rest(
    strategy: Strategy,
    name: str,
    request: InferRequest,
    version: str | None = None,
    key: str | None = None,
) -> RestAnswer:
    """Answer a v2 REST request (by ``version`` when named): JSON, or bytes and the JSON length.

    Raises:
        ModelNotFoundError: ``version`` is not one that answers here.
    """
    if wants_binary(request):
        response, feedback_id = await _infer_v2(strategy, name, request, version, key)
        body, json_length = response.to_rest()
        return RestAnswer(body, json_length, response.model_version, feedback_id)
    lane = lane_for(strategy, version, name, key)
    loaded = lane.loaded
    batch = decode_v2(request, loaded.signature, frame=loaded.engine.takes_frames)
    answer = await lane.answer(batch, request.id)
    document = encode_v2_json(
        answer.results,
        batch.outputs,
        loaded.signature,
        model_name=name,
        version=answer.version,
        request_id=answer.feedback_id or request.id,
    )
    return RestAnswer(document, None, answer.version, answer.feedback_id)


def answer_grpc(
    strategy: Strategy, name: str, message: pb.ModelInferRequest, key: str | None = None
) -> pb.ModelInferResponse:
    """Answer a gRPC ModelInfer message on the calling thread (one of gRPC's workers).

    Raw contents in, raw contents out, as KServe does; typed contents are decoded directly.
    """
    lane = strategy.choose(key)
    loaded = lane.loaded
    frame = loaded.engine.takes_frames
    if message.raw_input_contents:
        request = InferRequest.from_grpc(message)
        batch = decode_v2(request, loaded.signature, frame=frame)
        answer = lane.answer_blocking(batch, message.id)
        return _response(answer, batch, lane, name, request).to_grpc()
    batch = decode_grpc(message, loaded.signature, frame=frame)
    answer = lane.answer_blocking(batch, message.id)
    return encode_v2_grpc(
        answer.results,
        batch.outputs,
        loaded.signature,
        model_name=name,
        version=answer.version,
        request_id=answer.feedback_id or message.id or "",
    )


def _response(
    answer: Answer, batch: Batch, lane: Lane, name: str, request: InferRequest
) -> InferResponse:
    """KServe's InferResponse for ``answer``, under the id a feedback names when there is one."""
    if answer.feedback_id is not None:
        request.id = answer.feedback_id
    return encode_v2(
        answer.results,
        batch.outputs,
        lane.loaded.signature,
        model_name=name,
        version=answer.version,
        request=request,
    )
