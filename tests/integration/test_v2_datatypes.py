"""Every v2 datatype against every kind of model input, over REST and gRPC, as a matrix.

Four models (numbers, strings, one text per row, mixed columns) run as real processes. Each cell
sends one datatype, as one ``[N, F]`` tensor or as one tensor per feature (the datatype on the
first feature, the others as the model takes them), and requires either the answer
scikit-learn gives on the same values, or a 400 (gRPC: INVALID_ARGUMENT) in our words that names
what the model takes and the datatype that arrived.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from sklearn.compose import make_column_transformer
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from tests.helpers import RunningServer, ServerFactory

NUMBER_TYPES = [
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64",
]  # fmt: skip
DATATYPES = [*NUMBER_TYPES, "BYTES"]
Y = [0, 1, 0, 1]


@dataclass(frozen=True)
class Kind:
    """One kind of model input: its training frame, and what each column takes."""

    name: str
    train: pd.DataFrame | list[str]
    strings: tuple[str, ...]  # the columns fitted on strings
    numbers: tuple[str, ...]
    text: bool = False

    @property
    def columns(self) -> list[str]:
        return list(self.train.columns) if isinstance(self.train, pd.DataFrame) else ["text"]


KINDS = {
    "numbers": Kind("numbers", pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [0.0, 1, 0, 1]}), (), ("a", "b")),
    "strings": Kind(
        "strings",
        pd.DataFrame({"city": ["p", "l", "p", "b"], "color": ["r", "g", "r", "g"]}),
        ("city", "color"),
        (),
    ),
    "text": Kind("text", ["good day", "bad night", "good", "night"], (), (), text=True),
    "mixed": Kind(
        "mixed", pd.DataFrame({"city": ["p", "l", "p", "b"], "n": [1.0, 2, 3, 4]}), ("city",), ("n",)
    ),
}  # fmt: skip


def fit(kind: Kind) -> Any:
    if kind.text:
        return make_pipeline(CountVectorizer(), LogisticRegression()).fit(kind.train, Y)
    if not kind.strings:
        return LogisticRegression().fit(kind.train, Y)
    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), list(kind.strings)), remainder="passthrough"
    )
    return make_pipeline(encode, LogisticRegression()).fit(kind.train, Y)


@dataclass
class Served:
    kind: Kind
    model: Any
    server: RunningServer


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    folder = tmp_path_factory.mktemp("datatypes")
    factory = ServerFactory(folder)
    spawned = {}
    try:
        for kind in KINDS.values():
            model = fit(kind)
            path = folder / f"{kind.name}.joblib"
            joblib.dump(model, path)
            spawned[kind.name] = (kind, model, factory.spawn(str(path), name=kind.name))
        yield {
            name: Served(kind, model, factory.ready(server, timeout=60))
            for name, (kind, model, server) in spawned.items()
        }
    finally:
        factory.stop_all()


def values_for(kind: Kind, column: str, datatype: str) -> list[Any]:
    """Two rows of one column's values, as a caller would send them in ``datatype``."""
    if datatype == "BOOL":
        return [True, False]
    if datatype != "BYTES":
        return [1.5, 3.0] if datatype.startswith("FP") else [1, 3]
    if kind.text:
        return ["good day", "bad night"]
    if column in kind.strings:
        return ["p", "b"] if column == "city" else ["r", "g"]
    return [2, 3.5]  # a number in a BYTES tensor, for a numeric column


def answer_of(kind: Kind, model: Any, columns: dict[str, list[Any]]) -> np.ndarray:
    """What scikit-learn answers for these column values, read as the model takes them."""
    if kind.text:
        features: Any = columns["text"]
    else:
        features = pd.DataFrame(
            {c: columns[c] if c in kind.strings else np.asarray(columns[c], dtype=np.float64)
             for c in kind.columns}
        )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(model.predict_proba(features))


def expected_refusal(kind: Kind, datatype: str, form: str, transport: str) -> list[str] | None:
    """The words a refusal must hold; None where the right answer is due."""
    if transport == "rest" and datatype == "FP16":  # the protocol's rule for JSON bodies
        return ["FP16 data must be sent as binary data"]
    if form == "columns":  # the datatype is on the first column only
        first = kind.columns[0]
        wants_text = first in kind.strings
        if wants_text == (datatype == "BYTES"):
            return None
        if wants_text:
            return [f"input '{first}': expected strings (BYTES), got {datatype}"]
        return [f"input '{first}': expected numbers, got datatype BYTES"]
    if kind.text:
        return (
            None
            if datatype == "BYTES"
            else [f"expected texts (datatype BYTES), got datatype {datatype}"]
        )
    if kind.strings:
        if datatype == "BYTES":
            return None
        taken = ", ".join(f"'{c}'" for c in kind.strings)
        also = f" and numbers in {', '.join(repr(c) for c in kind.numbers)}" if kind.numbers else ""
        return [f"the model takes strings in feature(s) {taken}{also}; got datatype {datatype}"]
    return None if datatype != "BYTES" else ["takes numbers in every feature", "BYTES"]  # fmt: skip


def cell_tensors(kind: Kind, datatype: str, form: str) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:  # fmt: skip
    """The v2 input tensors of one cell (as REST JSON), and the column values they carry."""
    if form == "matrix" or kind.text:
        columns = {c: values_for(kind, c, datatype) for c in kind.columns}
        rows = list(zip(*columns.values(), strict=True))
        shape = [2] if kind.text else [2, len(kind.columns)]
        data = [v for row in rows for v in row]
        return [{"name": "x", "shape": shape, "datatype": datatype, "data": data}], columns
    tensors, columns = [], {}
    for j, column in enumerate(kind.columns):
        proper = "BYTES" if column in kind.strings else "FP64"
        chosen = datatype if j == 0 else proper
        columns[column] = values_for(kind, column, chosen)
        tensors.append({"name": column, "shape": [2], "datatype": chosen, "data": columns[column]})
    return tensors, columns


_CONTENTS = {
    "BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
    "UINT32": "uint_contents", "UINT64": "uint64_contents", "INT8": "int_contents",
    "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents",
}  # fmt: skip
_RAW = {
    "BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}  # fmt: skip


def grpc_request(model: str, tensors: list[dict[str, Any]]) -> pb.ModelInferRequest:
    """The same tensors as a gRPC request: typed contents, or raw bytes when one is FP16 (which
    has no contents field), BYTES cells as UTF-8 text (numbers as their text)."""
    raw = any(t["datatype"] == "FP16" for t in tensors)
    message = pb.ModelInferRequest(
        model_name=model,
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="predict_proba")],
    )
    for t in tensors:
        entry = message.inputs.add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
        texts = [str(v).encode() for v in t["data"]] if t["datatype"] == "BYTES" else None
        if raw:
            if texts is not None:
                blob = b"".join(len(v).to_bytes(4, "little") + v for v in texts)
            else:
                blob = np.asarray(t["data"], dtype=_RAW[t["datatype"]]).tobytes()
            message.raw_input_contents.append(blob)
        elif texts is not None:
            entry.contents.bytes_contents.extend(texts)
        else:
            getattr(entry.contents, _CONTENTS[t["datatype"]]).extend(t["data"])
    return message


CELLS = [
    (kind, datatype, form)
    for kind in KINDS
    for datatype in DATATYPES
    for form in (("matrix",) if kind == "text" else ("matrix", "columns"))
]


@pytest.mark.parametrize("transport", ["rest", "grpc"])
@pytest.mark.parametrize(("kind_name", "datatype", "form"), CELLS)
def test_each_datatype_is_answered_right_or_refused_in_our_words(
    served: dict[str, Served], kind_name: str, datatype: str, form: str, transport: str
) -> None:
    cell = served[kind_name]
    kind = cell.kind
    tensors, columns = cell_tensors(kind, datatype, form)
    refusal = expected_refusal(kind, datatype, form, transport)
    status, said = call(cell.server, kind.name, tensors, transport)
    if refusal is None:
        assert status == "ok", said
        expected = answer_of(kind, cell.model, columns)
        np.testing.assert_allclose(np.asarray(said).reshape(expected.shape), expected, rtol=1e-9)
        return
    assert status == "refused", (status, said)
    for words in refusal:
        assert words in said, said
    for foreign in ("ufunc", "numpy", "Traceback", "dtype('"):
        assert foreign not in said, said


def call(server: RunningServer, model: str, tensors: list[dict[str, Any]], transport: str) -> tuple[str, Any]:  # fmt: skip
    """("ok", probabilities) or ("refused", the message); anything else fails the test."""
    if transport == "rest":
        response = httpx.post(
            f"{server.url}/v2/models/{model}/infer",
            json={"inputs": tensors, "outputs": [{"name": "predict_proba"}]},
            timeout=30,
        )
        if response.status_code == 200:
            return "ok", response.json()["outputs"][0]["data"]
        assert response.status_code == 400, (response.status_code, response.text)
        return "refused", response.json()["error"]
    with grpc.insecure_channel(server.grpc_target) as channel:
        try:
            reply = GRPCInferenceServiceStub(channel).ModelInfer(
                grpc_request(model, tensors), timeout=30
            )
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
            return "refused", e.details()
    if reply.raw_output_contents:
        return "ok", np.frombuffer(reply.raw_output_contents[0], dtype="<f8").tolist()
    return "ok", list(reply.outputs[0].contents.fp64_contents)


@pytest.mark.parametrize(
    ("transport", "kind_name", "data", "words"),
    [
        # Over gRPC every BYTES cell is text, so a number cannot arrive in a string column.
        (
            "rest",
            "strings",
            [1, "r", "b", "g"],
            "row 0, feature 'city': expected a string, got a number",
        ),  # fmt: skip
        (
            "rest",
            "mixed",
            ["p", "many", "b", 1],
            "row 0, feature 'n': expected a number, got text that is not one",
        ),  # fmt: skip
        (
            "grpc",
            "mixed",
            ["p", "many", "b", 1],
            "row 0, feature 'n': expected a number, got text that is not one",
        ),  # fmt: skip
    ],
)
def test_a_bytes_tensor_must_hold_what_each_column_takes(
    served: dict[str, Served], transport: str, kind_name: str, data: list[Any], words: str
) -> None:
    tensors = [{"name": "x", "shape": [2, 2], "datatype": "BYTES", "data": data}]
    status, said = call(served[kind_name].server, kind_name, tensors, transport)
    assert (status, said) == ("refused", words)
