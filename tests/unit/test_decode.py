"""Payload decoding: v1 rows and v2 tensors to features, and every way a caller can get it wrong."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from predictor.errors import PayloadError, UnsupportedOutputError
from predictor.inference.batch import Batch, requested_outputs
from predictor.inference.signature import Signature
from predictor.protocol.v1 import decode_v1
from predictor.protocol.v2 import decode_v2

NAMED = Signature(
    task="classification",
    n_features=3,
    feature_names=("a", "b", "c"),
    feature_dtypes=("FP64", "FP64", "FP64"),
    classes=("x", "y"),
    label_datatype="BYTES",
    allow_nan=False,
)
UNNAMED_REGRESSOR = Signature(
    task="regression",
    n_features=2,
    feature_names=None,
    feature_dtypes=("FP64", "FP64"),
    classes=None,
    label_datatype="FP64",
    allow_nan=False,
)
MIXED = Signature(
    task="classification",
    n_features=2,
    feature_names=("city", "n"),
    feature_dtypes=("BYTES", "FP64"),
    classes=(0, 1),
    label_datatype="INT64",
    allow_nan=True,
)


def v2(*inputs: InferInput, outputs: list[str] | None = None) -> InferRequest:
    requested = [RequestedOutput(name=o) for o in outputs] if outputs else None
    return InferRequest("m", list(inputs), request_outputs=requested)


def table(batch: Batch) -> pd.DataFrame:
    """The batch's features, which must be a DataFrame."""
    assert isinstance(batch.features, pd.DataFrame), type(batch.features)
    return batch.features


def test_v1_list_rows_become_a_frame_with_the_feature_names() -> None:
    batch = decode_v1({"instances": [[1, 2, 3], [4, 5, 6]]}, NAMED)
    assert isinstance(batch.features, pd.DataFrame)
    assert list(batch.features.columns) == ["a", "b", "c"]
    assert table(batch).to_numpy().tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert batch.outputs == ("predict",)


def test_v1_named_rows_are_put_in_feature_order() -> None:
    batch = decode_v1({"instances": [{"c": 3, "a": 1, "b": 2}]}, NAMED)
    assert table(batch).to_numpy().tolist() == [[1.0, 2.0, 3.0]]


def test_v1_rows_may_mix_lists_and_named_objects() -> None:
    batch = decode_v1({"instances": [[1, 2, 3], {"b": 5, "a": 4, "c": 6}]}, NAMED)
    assert table(batch).to_numpy().tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


def test_v1_inputs_key_is_accepted_like_instances() -> None:
    batch = decode_v1({"inputs": [[1, 2]]}, UNNAMED_REGRESSOR)
    assert isinstance(batch.features, np.ndarray)
    assert batch.features.tolist() == [[1.0, 2.0]]


def test_v1_outputs_parameter_chooses_outputs_in_order() -> None:
    body = {"instances": [[1, 2, 3]], "parameters": {"outputs": ["predict_proba", "predict"]}}
    assert decode_v1(body, NAMED).outputs == ("predict_proba", "predict")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "expected a JSON object with 'instances' or 'inputs', got a list"),
        ({"rows": []}, "expected 'instances' or 'inputs' in the body; got keys: rows"),
        ({"instances": {"a": 1}}, "expected 'instances' to be a list of rows, got an object"),
        ({"instances": []}, "'instances' is empty; send at least one row"),
        ({"instances": [[1, 2]]}, "expected 3 features per row, got 2"),
        ({"instances": [[1, 2, 3], [1, 2]]}, "row 1: expected 3 features, got 2"),
        ({"instances": [[1, "x", 3]]}, "row 0, feature 'b': expected a number, got a string"),
        ({"instances": [[1, [2], 3]]}, "row 0, feature 'b': expected a number, got a list"),
        ({"instances": [[1, None, 3]]}, "row 0, feature 'b': got a missing value (NaN/null)"),
        ({"instances": [5]}, "row 0: expected a list of 3 values or an object of named features"),
        (
            {"instances": [{"a": 1, "b": 2}]},
            "row 0: missing feature(s) 'c'; the model takes: a, b, c",
        ),
        ({"instances": [{"a": 1, "b": 2, "c": 3, "d": 4}]}, "row 0: unknown feature(s) 'd'"),
        (
            {"instances": [{"a": 1, "b": 2, "trip_id": 3, "x" * 60: 4}]},
            "row 0: missing feature(s) 'c'; unknown feature(s) 'trip_id', '"
            + "x" * 39
            + "…'; the model takes: a, b, c",
        ),
        ({"instances": [[1, 2, 3]], "parameters": []}, "expected 'parameters' to be an object"),
        (
            {"instances": [[1, 2, 3]], "parameters": {"outputs": "predict"}},
            "parameters.outputs to be a list",
        ),
    ],
)
def test_v1_bad_bodies_say_what_was_expected(body: object, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        decode_v1(body, NAMED)
    assert message in str(caught.value)


def test_v1_named_rows_for_a_model_without_names_are_refused() -> None:
    with pytest.raises(
        PayloadError, match="fitted without feature names; send each row as a list of 2"
    ):
        decode_v1({"instances": [{"a": 1, "b": 2}]}, UNNAMED_REGRESSOR)


def test_nan_is_passed_through_when_the_model_takes_missing_values() -> None:
    batch = decode_v1({"instances": [["paris", None]]}, MIXED)
    assert table(batch)["city"].tolist() == ["paris"]
    assert math.isnan(table(batch)["n"].iloc[0])


def test_infinity_is_refused_even_when_nan_is_allowed() -> None:
    tensor = InferInput("n", [1], "FP64", data=np.array([np.inf]))
    city = InferInput("city", [1], "BYTES", data=["paris"])
    with pytest.raises(PayloadError, match="row 0, feature 'n': got infinity"):
        decode_v2(v2(city, tensor), MIXED)


def test_strings_must_be_strings_for_string_features() -> None:
    with pytest.raises(
        PayloadError, match="row 0, feature 'city': expected a string, got a number"
    ):
        decode_v1({"instances": [[3, 1]]}, MIXED)


def test_v2_single_matrix_under_any_name() -> None:
    batch = decode_v2(v2(InferInput("whatever", [2, 3], "FP32", data=[1, 2, 3, 4, 5, 6])), NAMED)
    assert batch.n_rows == 2
    assert table(batch).to_numpy().tolist() == [[1, 2, 3], [4, 5, 6]]


def test_v2_one_tensor_per_feature_in_any_order() -> None:
    request = v2(
        InferInput("c", [2], "INT64", data=[3, 6]),
        InferInput("a", [2, 1], "FP64", data=[1, 4]),
        InferInput("b", [2], "INT32", data=[2, 5]),
        outputs=["predict_proba"],
    )
    batch = decode_v2(request, NAMED)
    assert table(batch).to_numpy().tolist() == [[1, 2, 3], [4, 5, 6]]
    assert batch.outputs == ("predict_proba",)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([], "'inputs' is empty"),
        ([InferInput("x", [1, 2], "FP64", data=[1, 2])], "expected 3 features per row, got 2"),
        ([InferInput("x", [3], "FP64", data=[1, 2, 3])], "expected shape [N, 3], got [3]"),
        (
            [InferInput("x", [2, 3], "FP64", data=[1, 2, 3])],
            "data does not fit datatype FP64 and shape [2, 3]",
        ),
        ([InferInput("x", [1, 3], "FP64", data=[1, "a", 3])], "data does not fit datatype FP64"),
        (
            [InferInput("x", [1, 3], "INT64", data=[1, 2**63, 3])],
            "input 'x': a value is out of the range of datatype INT64",
        ),
        (
            [InferInput("x", [1, 3], "UINT8", data=[1, -1, 3])],
            "input 'x': a value is out of the range of datatype UINT8",
        ),
        (
            [InferInput("x", [1, 3], "FP32", data=[1.0, 1e300, 3.0])],
            "input 'x': a value is out of the range of datatype FP32",
        ),
        (
            [InferInput("x", [1, 3], "BYTES", data=["1", "2", "3"])],
            "the model takes numbers in every feature; got strings (datatype BYTES)",
        ),
        ([InferInput("x", [0, 3], "FP64", data=[])], "input 'x' has no rows"),
        (
            [InferInput("x", [1, 3], "FP64", data=np.array([1.0, np.nan, 3]))],
            "row 0, feature 'b': got a missing value",
        ),
        (
            [InferInput("a", [1], "FP64", data=[1]), InferInput("b", [1], "FP64", data=[2])],
            "missing input tensor(s) for feature(s) 'c'",
        ),
        (
            [InferInput("a", [1], "FP64", data=[1]), InferInput("zz", [1], "FP64", data=[2])],
            "unknown input tensor(s) 'zz'; the model takes one tensor per feature: a, b, c",
        ),
        (
            [
                InferInput("a", [1], "FP64", data=[1]),
                InferInput("b", [2], "FP64", data=[2, 3]),
                InferInput("c", [1], "FP64", data=[1]),
            ],
            "input 'b' has 2 rows, but earlier inputs have 1",
        ),
    ],
)
def test_v2_bad_tensors_say_what_was_expected(inputs: list[InferInput], message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        decode_v2(v2(*inputs), NAMED)
    assert message in str(caught.value)


def test_v2_several_tensors_for_a_model_without_feature_names() -> None:
    request = v2(InferInput("a", [1], "FP64", data=[1]), InferInput("b", [1], "FP64", data=[2]))
    with pytest.raises(
        PayloadError, match="got 2 input tensors but this model has no feature names"
    ):
        decode_v2(request, UNNAMED_REGRESSOR)


def test_predict_proba_on_a_regressor_is_refused_by_name() -> None:
    with pytest.raises(
        UnsupportedOutputError,
        match="this regression model has no predict_proba; it gives: predict",
    ):
        requested_outputs(["predict_proba"], UNNAMED_REGRESSOR)


def test_unknown_output_lists_what_the_model_gives() -> None:
    with pytest.raises(
        UnsupportedOutputError,
        match="unknown output name; this model gives: predict, predict_proba",
    ):
        requested_outputs(["explain"], NAMED)
    with pytest.raises(
        UnsupportedOutputError,
        match="this classification model has no transform; it gives: predict, predict_proba",
    ):
        requested_outputs(["transform"], NAMED)


def test_duplicate_outputs_are_given_once() -> None:
    assert requested_outputs(["predict", "predict"], NAMED) == ("predict",)
