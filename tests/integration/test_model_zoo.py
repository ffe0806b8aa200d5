"""The models people pickle, served from bare joblib and skops files and called over the wire.

Each model is fitted here, saved with ``joblib.dump`` and with ``skops.io.dump``, served by a
real ``python -m predictor`` process (the skops file with ``--allow_pickle false``), and called
over v1 REST, v2 REST and gRPC. Every output its v2 metadata lists is asked
for and compared with the estimator's own method on the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from sklearn.calibration import CalibratedClassifierCV
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    IsolationForest,
    RandomForestRegressor,
)
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeClassifier

from tests.helpers import RunningServer, ServerFactory

pytestmark = pytest.mark.timeout(120)

RNG = np.random.default_rng(7)
X = RNG.normal(size=(300, 4))
Y_NUM = (X[:, 0] + X[:, 1] > 0).astype(int)
Y_STR = np.where(X[:, 0] - X[:, 2] > 0, "yes", "no")
Y_THREE = np.digitize(X[:, 0], [-0.5, 0.5])
X_NAN = X.copy()
X_NAN[::7, 1] = np.nan
CITIES = np.array(["paris", "lyon", "nice"])
FRAME = pd.DataFrame(
    {
        "city": CITIES[RNG.integers(0, 3, 300)],
        "rooms": RNG.integers(1, 6, 300).astype(float),
        "area": RNG.normal(60, 15, 300),
    }
)
FRAME_Y = np.where((FRAME["city"] == "paris") | (FRAME["area"] > 70), "high", "low")
CATEGORICAL = FRAME.assign(city=pd.Categorical(FRAME["city"]))
"""The frame with ``city`` as a pandas categorical, which these models take natively."""
TEXTS = np.array(
    ["great plot and acting", "boring and long", "loved it", "awful script", "great fun"] * 40
)
TEXT_Y = np.array([1, 0, 1, 0, 1] * 40)


@dataclass(frozen=True)
class Case:
    """One model of the zoo, the rows it is asked about, and how they travel."""

    name: str
    build: Callable[[], Any]
    rows: Any
    """A float matrix, a DataFrame (named, possibly mixed columns), or an array of texts."""


def fitted(estimator: Any, x: Any, y: Any = None) -> Callable[[], Any]:
    return lambda: estimator.fit(x) if y is None else estimator.fit(x, y)


CASES = [
    Case("logistic-int-labels", fitted(LogisticRegression(), X, Y_NUM), X[:5]),
    Case("linear-svc-string-labels", fitted(LinearSVC(), X, Y_STR), X[:5]),
    Case(
        "svc-probabilities",
        fitted(CalibratedClassifierCV(SVC(), ensemble=False), X, Y_THREE),
        X[:5],
    ),
    Case("knn", fitted(KNeighborsClassifier(), X, Y_THREE), X[:5]),
    Case("decision-tree", fitted(DecisionTreeClassifier(max_depth=4), X, Y_STR), X[:5]),
    Case("gradient-boosting", fitted(GradientBoostingClassifier(n_estimators=20), X, Y_NUM), X[:5]),
    Case(
        "hist-gb-with-nan",
        fitted(HistGradientBoostingClassifier(max_iter=20), X_NAN, Y_NUM),
        X_NAN[:8],
    ),
    Case("ridge", fitted(Ridge(), X, X[:, 0] * 2), X[:5]),
    Case(
        "forest-regressor",
        fitted(RandomForestRegressor(n_estimators=10, random_state=0), X, X[:, 1]),
        X[:5],
    ),
    Case("multi-output", fitted(LinearRegression(), X, np.c_[X[:, 0], X[:, 1] * 3]), X[:5]),
    Case(
        "imputing-pipeline",
        fitted(make_pipeline(SimpleImputer(), LogisticRegression()), X_NAN, Y_NUM),
        X_NAN[:8],
    ),
    Case(
        "frame-pipeline",
        fitted(
            Pipeline(
                [
                    (
                        "columns",
                        ColumnTransformer(
                            [
                                ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
                                ("num", StandardScaler(), ["rooms", "area"]),
                            ]
                        ),
                    ),
                    ("model", LogisticRegression()),
                ]
            ),
            FRAME,
            FRAME_Y,
        ),
        FRAME.iloc[:6],
    ),
    Case(
        "text-pipeline",
        fitted(make_pipeline(TfidfVectorizer(), LogisticRegression()), TEXTS, TEXT_Y),
        TEXTS[:4],
    ),
    Case("isolation-forest", fitted(IsolationForest(n_estimators=20, random_state=0), X), X[:5]),
    Case("kmeans", fitted(KMeans(n_clusters=3, n_init=2, random_state=0), X), X[:5]),
    Case("pca", fitted(PCA(n_components=2), X), X[:5]),
    Case("xgboost", lambda: xgboost_classifier().fit(X_NAN, Y_NUM), X_NAN[:8]),
    Case("lightgbm", lambda: lightgbm_classifier().fit(X, Y_THREE), X[:5]),
    Case(
        "hist-gb-categorical-from-dtype",
        fitted(
            HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=20),
            CATEGORICAL,
            FRAME_Y,
        ),
        CATEGORICAL.iloc[:6],
    ),
    Case(
        "lightgbm-categorical",
        lambda: lightgbm_classifier().fit(CATEGORICAL, FRAME_Y),
        CATEGORICAL.iloc[:6],
    ),
    Case(
        "xgboost-categorical",
        lambda: xgboost_classifier(enable_categorical=True).fit(
            CATEGORICAL, (FRAME_Y == "high").astype(int)
        ),
        CATEGORICAL.iloc[:6],
    ),
    Case(
        "skorch",
        lambda: skorch_classifier().fit(X.astype(np.float32), Y_NUM),
        X[:5].astype(np.float32),
    ),
]


def xgboost_classifier(**options: Any) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1, **options)


def lightgbm_classifier() -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=10, num_leaves=7, n_jobs=1, verbose=-1)


def skorch_classifier() -> Any:
    import torch
    from skorch import NeuralNetClassifier

    from tests.torch_modules import TinyNet

    torch.manual_seed(0)
    return NeuralNetClassifier(
        TinyNet,
        max_epochs=5,
        lr=0.1,
        criterion=torch.nn.CrossEntropyLoss,
        train_split=None,
        verbose=0,
    )


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo")


NOT_AS_SKOPS = {
    "skorch": "skorch keeps its network with torch.save, a pickle that loading would run",
}
"""The kinds a skops file refuses, and the reason the server gives (docs/security.md lists them)."""

SERVED = [(c, "joblib") for c in CASES] + [
    (c, "skops") for c in CASES if c.name not in NOT_AS_SKOPS
]


@pytest.fixture(params=SERVED, ids=[f"{c.name}-{f}" for c, f in SERVED])
def served(
    request: pytest.FixtureRequest, zoo_dir: Path, server: ServerFactory
) -> Iterator[tuple[Case, Any, RunningServer]]:
    case, file_format = request.param
    estimator = case.build()
    path = zoo_dir / f"{case.name}.{file_format}"
    if file_format == "joblib":
        joblib.dump(estimator, path)
        yield case, estimator, server.start(str(path), name="zoo", timeout=60)
    else:  # a file that cannot run code, served where no pickle may load
        skops.io.dump(estimator, path)
        args = ["--allow_pickle", "false"]
        yield case, estimator, server.start(str(path), name="zoo", timeout=60, args=args)


@pytest.mark.parametrize("name", sorted(NOT_AS_SKOPS))
def test_a_kind_skops_cannot_keep_safe_is_refused_at_start(
    name: str, zoo_dir: Path, server: ServerFactory
) -> None:
    case = next(c for c in CASES if c.name == name)
    path = zoo_dir / f"{name}-refused.skops"
    skops.io.dump(case.build(), path)
    refused = server.run_to_exit(str(path), name="zoo", args=["--allow_pickle", "false"])
    assert refused.process.returncode == 2, refused.log()
    said = [line for line in refused.log().splitlines() if line.startswith("predictor: ")]
    assert len(said) == 1 and NOT_AS_SKOPS[name] in said[0], refused.log()
    assert "Traceback" not in refused.log()


def expected(estimator: Any, name: str, rows: Any) -> np.ndarray:
    value = getattr(estimator, name)(rows)
    return np.asarray(value.toarray() if hasattr(value, "toarray") else value)


def same(got: Any, want: np.ndarray) -> None:
    got = np.asarray(got)
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got.astype(float), want, rtol=1e-6, atol=1e-6)
    else:
        assert [str(v) for v in got.ravel()] == [str(v) for v in want.ravel()]


def v1_instances(rows: Any) -> list[Any]:
    if isinstance(rows, pd.DataFrame):
        return [
            {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in rows.to_dict("records")
        ]
    if rows.dtype.kind in "OU":
        return [str(t) for t in rows]
    return [[None if np.isnan(v) else float(v) for v in row] for row in rows]


def v2_inputs(rows: Any) -> list[dict[str, Any]]:
    if isinstance(rows, pd.DataFrame):
        return [
            {
                "name": str(column),
                "shape": [len(rows)],
                "datatype": "BYTES" if rows[column].dtype.kind == "O" else "FP64",  # categories too
                "data": rows[column].tolist(),
            }
            for column in rows.columns
        ]
    if rows.dtype.kind in "OU":
        return [{"name": "text", "shape": [len(rows)], "datatype": "BYTES", "data": rows.tolist()}]
    data = [None if np.isnan(v) else float(v) for v in rows.ravel()]
    return [{"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": data}]


def grpc_inputs(rows: Any) -> list[pb.ModelInferRequest.InferInputTensor]:
    tensors = []
    for tensor in v2_inputs(rows):
        if tensor["datatype"] == "BYTES":
            contents = pb.InferTensorContents(
                bytes_contents=[str(v).encode() for v in tensor["data"]]
            )
        else:
            values = [float("nan") if v is None else v for v in tensor["data"]]
            contents = pb.InferTensorContents(fp64_contents=values)
        tensors.append(
            pb.ModelInferRequest.InferInputTensor(
                name=tensor["name"],
                datatype=tensor["datatype"],
                shape=tensor["shape"],
                contents=contents,
            )
        )
    return tensors


def grpc_values(tensor: pb.ModelInferResponse.InferOutputTensor) -> np.ndarray:
    contents = tensor.contents
    if tensor.datatype == "BYTES":
        flat: list[Any] = [b.decode() for b in contents.bytes_contents]
    elif tensor.datatype == "INT64":
        flat = list(contents.int64_contents)
    elif tensor.datatype == "BOOL":
        flat = list(contents.bool_contents)
    else:
        flat = list(contents.fp64_contents)
    return np.asarray(flat).reshape(list(tensor.shape))


def test_every_output_over_every_protocol_equals_the_estimator(
    served: tuple[Case, Any, RunningServer],
) -> None:
    case, estimator, running = served
    metadata = httpx.get(f"{running.url}/v2/models/zoo").json()
    explaining = ("contributions", "base_value")  # test_explain.py asks for these
    outputs = [o["name"] for o in metadata["outputs"] if o["name"] not in explaining]
    methods = [
        m
        for m in ("predict", "predict_proba", "decision_function", "score_samples", "transform")
        if callable(getattr(estimator, m, None))
    ]
    # every method the estimator really has is served, and nothing else
    assert outputs == [m for m in methods if _works(estimator, m, case.rows)], outputs
    want = {name: expected(estimator, name, case.rows) for name in outputs}

    v1 = httpx.post(
        f"{running.url}/v1/models/zoo:predict",
        json={"instances": v1_instances(case.rows), "parameters": {"outputs": outputs}},
    )
    assert v1.status_code == 200, v1.text
    for name in outputs:
        same(v1.json()[name], want[name])

    v2 = httpx.post(
        f"{running.url}/v2/models/zoo/infer",
        json={"inputs": v2_inputs(case.rows), "outputs": [{"name": n} for n in outputs]},
    )
    assert v2.status_code == 200, v2.text
    by_name = {t["name"]: t for t in v2.json()["outputs"]}
    declared = {o["name"]: o for o in metadata["outputs"]}
    for name in outputs:
        tensor = by_name[name]
        assert tensor["datatype"] == declared[name]["datatype"]
        same(np.asarray(tensor["data"]).reshape(tensor["shape"]), want[name])

    with grpc.insecure_channel(running.grpc_target) as channel:
        reply = GRPCInferenceServiceStub(channel).ModelInfer(
            pb.ModelInferRequest(
                model_name="zoo",
                inputs=grpc_inputs(case.rows),
                outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=n) for n in outputs],
            ),
            timeout=30,
        )
    for tensor in reply.outputs:
        same(grpc_values(tensor), want[tensor.name])
    assert [t.name for t in reply.outputs] == outputs


def _works(estimator: Any, method: str, rows: Any) -> bool:
    """Whether the estimator offers ``method``; an exception from calling it fails the test.

    scikit-learn hides a method a fit did not enable (``available_if``: predict_proba on an SVC
    fitted without probability), so ``hasattr`` is the question; calling it proves it runs.
    """
    if not hasattr(estimator, method):
        return False
    getattr(estimator, method)(rows[:1] if not isinstance(rows, pd.DataFrame) else rows.iloc[:1])
    return True


@pytest.fixture(scope="module")
def strict_frame_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningServer]:
    model = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("cat", OneHotEncoder(handle_unknown="error"), ["city"]),
                        ("num", StandardScaler(), ["rooms", "area"]),
                    ]
                ),
            ),
            ("model", LogisticRegression()),
        ]
    ).fit(FRAME, FRAME_Y)
    folder = tmp_path_factory.mktemp("strict")
    joblib.dump(model, folder / "model.joblib")
    factory = ServerFactory(folder)
    yield factory.start(str(folder / "model.joblib"), name="frame", timeout=60)
    factory.stop_all()


ROW = {"city": "paris", "rooms": 3.0, "area": 55.0}


@pytest.mark.parametrize(
    ("instances", "error"),
    [
        ([{**ROW, "city": 3}], "row 0, feature 'city': expected a string, got a number"),
        ([["paris", "three", 55.0]], "row 0, feature 'rooms': expected a number, got a string"),
        (
            [{**ROW, "city": "rome"}],
            "the model rejected the input: Found unknown categories … in column 0 during transform",
        ),
        ([{"city": "paris", "rooms": 3.0}], "row 0: missing feature(s) 'area'"),
        ([{**ROW, "garden": 1}], "row 0: unknown feature(s) 'garden'"),
        ([{**ROW, "city": None}], "row 0, feature 'city': got a missing value (null)"),
    ],
)
def test_bad_frame_input_is_a_400_naming_row_and_feature(
    strict_frame_server: RunningServer, instances: list[Any], error: str
) -> None:
    reply = httpx.post(
        f"{strict_frame_server.url}/v1/models/frame:predict", json={"instances": instances}
    )
    assert reply.status_code == 400, reply.text
    assert error in reply.json()["error"]
    assert "rome" not in reply.text


def test_a_numeric_tensor_for_a_string_column_is_a_400(strict_frame_server: RunningServer) -> None:
    inputs = v2_inputs(FRAME.iloc[:2])
    inputs[0] = {"name": "city", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}
    reply = httpx.post(f"{strict_frame_server.url}/v2/models/frame/infer", json={"inputs": inputs})
    assert reply.status_code == 400
    assert reply.json() == {"error": "input 'city': expected strings (BYTES), got FP64"}
    metadata = httpx.get(f"{strict_frame_server.url}/v2/models/frame").json()
    assert metadata["inputs"] == [
        {"name": "city", "datatype": "BYTES", "shape": [-1]},
        {"name": "rooms", "datatype": "FP64", "shape": [-1]},
        {"name": "area", "datatype": "FP64", "shape": [-1]},
    ]


def test_text_models_refuse_empty_and_non_text_rows(server: ServerFactory, zoo_dir: Path) -> None:
    path = zoo_dir / "text.joblib"
    joblib.dump(make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TEXTS, TEXT_Y), path)
    running = server.start(str(path), name="text", timeout=60)
    url = f"{running.url}/v1/models/text:predict"
    assert httpx.post(url, json={"instances": ["great", "  "]}).json() == {
        "error": "row 1: the text is empty"
    }
    assert httpx.post(url, json={"instances": [[1, 2]]}).json() == {
        "error": "row 0: expected a text (a string), got a list"
    }
    numbers = {"inputs": [{"name": "t", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}]}
    reply = httpx.post(f"{running.url}/v2/models/text/infer", json=numbers)
    assert (reply.status_code, reply.json()) == (
        400,
        {"error": "input 't': expected texts (datatype BYTES), got datatype FP64"},
    )
    metadata = httpx.get(f"{running.url}/v2/models/text").json()
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]


RECORDS: list[dict[str, Any]] = [
    {str(k): v for k, v in r.items()} for r in FRAME.to_dict("records")
]


def test_a_model_that_takes_mappings_is_served_with_keys_left_out(
    server: ServerFactory, zoo_dir: Path
) -> None:
    from sklearn.feature_extraction import DictVectorizer

    model = make_pipeline(DictVectorizer(), LogisticRegression()).fit(RECORDS, FRAME_Y)
    path = zoo_dir / "mappings.joblib"
    joblib.dump(model, path)
    running = server.start(str(path), name="dv", timeout=60)
    rows: list[dict[str, Any]] = [{"city": "paris", "rooms": 3.0}, {"area": 80.0}, RECORDS[5]]
    want = model.predict_proba(rows)

    metadata = httpx.get(f"{running.url}/v2/models/dv").json()
    assert metadata["inputs"] == [
        {"name": "area", "datatype": "FP64", "shape": [-1]},
        {"name": "city", "datatype": "BYTES", "shape": [-1]},
        {"name": "rooms", "datatype": "FP64", "shape": [-1]},
    ]
    v1 = httpx.post(
        f"{running.url}/v1/models/dv:predict",
        json={"instances": rows, "parameters": {"outputs": ["predict_proba"]}},
    )
    assert v1.status_code == 200, v1.text
    same(v1.json()["predict_proba"], want)
    columns = {name: [row.get(name) for row in rows] for name in ("area", "city", "rooms")}
    v2 = httpx.post(
        f"{running.url}/v2/models/dv/infer",
        json={
            "inputs": [
                {"name": n, "shape": [3], "datatype": "BYTES" if n == "city" else "FP64", "data": v}
                for n, v in columns.items()
            ],
            "outputs": [{"name": "predict_proba"}],
        },
    )
    assert v2.status_code == 200, v2.text
    same(np.asarray(v2.json()["outputs"][0]["data"]).reshape(want.shape), want)
    typo = httpx.post(f"{running.url}/v1/models/dv:predict", json={"instances": [{"cty": "x"}]})
    assert typo.status_code == 400
    assert typo.json()["error"] == (
        "row 0: missing feature(s) 'area', 'city', 'rooms'; unknown feature(s) 'cty'; "
        "the model takes: area, city, rooms"
    )


def test_a_hasher_of_mappings_is_refused_at_start_up_with_the_reason(
    server: ServerFactory, zoo_dir: Path
) -> None:
    from sklearn.feature_extraction import FeatureHasher

    model = make_pipeline(FeatureHasher(n_features=16), LogisticRegression())
    path = zoo_dir / "hasher.joblib"
    joblib.dump(model.fit(RECORDS, FRAME_Y), path)
    refused = server.run_to_exit(str(path))
    assert refused.process.returncode == 2, refused.log()
    assert (
        "predictor: cannot serve model 'model': the model's first step is a FeatureHasher of "
        "mappings, which keeps no list of its keys"
    ) in refused.log()
    assert "Traceback" not in refused.log()
