"""gRPC messages: our reader and writer give what KServe's ``from_grpc`` / ``to_grpc`` give."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.infer_type import InferRequest

from predictor.errors import PayloadError
from predictor.inference.signature import Signature
from predictor.protocol.v2 import decode_v2, encode_v2
from predictor.protocol.v2_grpc import decode_grpc, encode_v2_grpc, packed_values, request_from_grpc

Tensor = pb.ModelInferRequest.InferInputTensor
ROWS = np.random.default_rng(0).normal(size=(64, 20))


def message(*tensors: pb.ModelInferRequest.InferInputTensor, **fields: Any) -> pb.ModelInferRequest:
    return pb.ModelInferRequest(model_name="m", inputs=list(tensors), **fields)


def tensor(
    datatype: str, shape: list[int], **contents: Any
) -> pb.ModelInferRequest.InferInputTensor:
    return Tensor(
        name="input-0",
        datatype=datatype,
        shape=shape,
        contents=pb.InferTensorContents(**contents),
    )


CASES = {
    "fp64 one row": message(tensor("FP64", [1, 20], fp64_contents=ROWS[0].tolist())),
    "fp64 64 rows, id, outputs, parameters": message(
        tensor("FP64", [64, 20], fp64_contents=ROWS.ravel().tolist()),
        id="req-1",
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="predict_proba")],
        parameters={"p": pb.InferParameter(string_param="v")},
    ),
    "fp32": message(tensor("FP32", [2, 20], fp32_contents=ROWS[:2].ravel().tolist())),
    "int64 (KServe's reader)": message(tensor("INT64", [1, 3], int64_contents=[1, -2, 3])),
    "two fields set (KServe's reader)": message(
        tensor("FP64", [1, 2], fp64_contents=[1.5, 2.5], int64_contents=[7])
    ),
    "raw contents (KServe's reader)": message(
        Tensor(name="input-0", datatype="FP64", shape=[1, 2]),
        raw_input_contents=[np.array([1.5, 2.5]).tobytes()],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_requests_read_as_kserve_reads_them(case: str) -> None:
    ours, theirs = request_from_grpc(CASES[case]), InferRequest.from_grpc(CASES[case])
    assert (ours.id, ours.model_name, ours.use_binary_outputs) == (
        theirs.id,
        theirs.model_name,
        theirs.use_binary_outputs,
    )
    assert [o.name for o in ours.request_outputs or []] == [
        o.name for o in theirs.request_outputs or []
    ]
    assert dict(ours.parameters or {}) == dict(theirs.parameters or {})
    for mine, kserve in zip(ours.inputs, theirs.inputs, strict=True):
        assert (mine.name, mine.shape, mine.datatype) == (
            kserve.name,
            kserve.shape,
            kserve.datatype,
        )
        a, b = mine.as_numpy(), kserve.as_numpy()
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


NAN_ROW = ROWS[0].copy()
NAN_ROW[3] = np.nan
DECODED = {
    **CASES,
    "predict and predict_proba": message(
        tensor("FP64", [2, 20], fp64_contents=ROWS[:2].ravel().tolist()),
        outputs=[
            pb.ModelInferRequest.InferRequestedOutputTensor(name="predict_proba"),
            pb.ModelInferRequest.InferRequestedOutputTensor(name="predict"),
        ],
    ),
    "values that do not fill the shape": message(
        tensor("FP64", [2, 20], fp64_contents=ROWS[0].tolist())
    ),
    "a flat shape": message(tensor("FP64", [20], fp64_contents=ROWS[0].tolist())),
    "19 features": message(tensor("FP64", [1, 19], fp64_contents=ROWS[0, :19].tolist())),
    "no rows": message(tensor("FP64", [0, 20])),
    "a NaN": message(tensor("FP64", [1, 20], fp64_contents=NAN_ROW.tolist())),
    "an unknown output": message(
        tensor("FP64", [1, 20], fp64_contents=ROWS[0].tolist()),
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="decision_function")],
    ),
    "two tensors": message(
        tensor("FP64", [1, 20], fp64_contents=ROWS[0].tolist()),
        tensor("FP64", [1, 20], fp64_contents=ROWS[1].tolist()),
    ),
}


@pytest.mark.parametrize("case", list(DECODED))
@pytest.mark.parametrize("frame", [False, True])
def test_messages_decode_as_kserves_reader_and_decode_v2_decode_them(
    case: str, frame: bool
) -> None:
    sig = signature(classes=(0, 1), label_datatype="INT64", names=frame)
    try:
        expected = decode_v2(InferRequest.from_grpc(DECODED[case]), sig, frame=frame)
    except PayloadError as e:
        with pytest.raises(PayloadError) as raised:
            decode_grpc(DECODED[case], sig, frame=frame)
        assert str(raised.value) == str(e)
        return
    ours = decode_grpc(DECODED[case], sig, frame=frame)
    assert (ours.n_rows, ours.outputs) == (expected.n_rows, expected.outputs)
    assert type(ours.features) is type(expected.features)
    np.testing.assert_array_equal(np.asarray(ours.features), np.asarray(expected.features))
    assert np.asarray(ours.features).dtype == np.asarray(expected.features).dtype


def test_a_tensor_named_after_the_only_feature_is_that_features_column() -> None:
    sig = Signature(
        task="regression",
        n_features=1,
        feature_names=("x",),
        feature_dtypes=("FP64",),
        classes=None,
        label_datatype="FP64",
        allow_nan=False,
    )
    column = Tensor(name="x", datatype="FP64", shape=[3], contents=pb.InferTensorContents())
    column.contents.fp64_contents.extend([1.0, 2.0, 3.0])
    batch = decode_grpc(message(column), sig, frame=True)
    assert batch.n_rows == 3 and list(batch.features["x"]) == [1.0, 2.0, 3.0]


def test_only_a_lone_packed_float_field_is_read_directly() -> None:
    assert packed_values(tensor("FP64", [1, 2], fp64_contents=[1.0, 2.0])) is not None
    assert packed_values(tensor("FP64", [0, 2])) is None  # no values
    assert packed_values(tensor("FP64", [1, 2], fp64_contents=[1.0], int_contents=[1])) is None
    # a field after the packed one (bytes_contents is field 8): the lengths do not add up
    assert packed_values(tensor("FP64", [1, 2], fp64_contents=[1.0], bytes_contents=[b"x"])) is None
    assert packed_values(tensor("FP64", [1, 2], fp32_contents=[1.0, 2.0])) is None
    assert packed_values(tensor("BOOL", [1], bool_contents=[True])) is None
    big = np.arange(40_000, dtype=np.float64)  # a length varint of three bytes
    np.testing.assert_array_equal(
        packed_values(tensor("FP64", [40_000], fp64_contents=big.tolist())), big
    )


def test_a_shape_that_does_not_fit_the_values_is_the_callers_mistake() -> None:
    request = request_from_grpc(message(tensor("FP64", [2, 20], fp64_contents=ROWS[0].tolist())))
    with pytest.raises(PayloadError, match="does not fit datatype FP64 and shape"):
        decode_v2(request, signature(classes=(0, 1), label_datatype="INT64"), frame=False)


def signature(
    *, classes: tuple[Any, ...] | None, label_datatype: str, names: bool = False
) -> Signature:
    return Signature(
        task="classification" if classes else "regression",
        n_features=20,
        feature_names=tuple(f"f{i}" for i in range(20)) if names else None,
        feature_dtypes=("FP64",) * 20,
        classes=classes,
        label_datatype=label_datatype,
        allow_nan=False,
    )


@pytest.mark.parametrize(
    ("classes", "label_datatype", "labels"),
    [
        ((0, 1), "INT64", np.array([1, 0, 1])),
        (("cat", "dog"), "BYTES", np.array(["dog", "cat", "dog"], dtype=object)),
        ((False, True), "BOOL", np.array([True, False, True])),
        (None, "FP64", np.array([0.5, -1.25, 3.0])),
    ],
)
def test_responses_are_what_kserve_would_send(
    classes: tuple[Any, ...] | None, label_datatype: str, labels: np.ndarray
) -> None:
    sig = signature(classes=classes, label_datatype=label_datatype)
    outputs: tuple[str, ...] = ("predict", "predict_proba") if classes else ("predict",)
    results = {"predict": labels, "predict_proba": np.array([[0.25, 0.75], [0.5, 0.5], [0, 1.0]])}
    request = InferRequest(model_name="m", infer_inputs=[], request_id="req-7")
    expected = encode_v2(results, outputs, sig, model_name="m", version="2", request=request)
    ours = encode_v2_grpc(results, outputs, sig, model_name="m", version="2", request_id="req-7")
    assert ours == expected.to_grpc()


def test_response_ids_do_not_follow_or_move_the_random_module() -> None:
    import random

    from predictor.protocol.tensors import new_id

    random.seed(7)
    first = [new_id() for _ in range(3)]
    after = random.random()
    random.seed(7)
    second = [new_id() for _ in range(3)]
    assert random.random() == after  # drawing ids did not move the module's sequence
    assert set(first).isdisjoint(second)  # and seeding it does not repeat them
