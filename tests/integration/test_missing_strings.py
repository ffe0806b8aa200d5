"""A missing string reaches the model as the marker it was fitted with (None or NaN).

A caller says "missing" one way (JSON null; an empty CSV cell; a Parquet null), but a pipeline
fitted on Parquet data learned ``None`` and one fitted on ``read_csv`` data learned NaN, and the
two give different answers. Served models answer what scikit-learn answers on the data they
were fitted on; a model that answers the two differently with nothing saying which it knows
refuses a missing value there, and says so at start-up.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from tests.estimators import none_as_word
from tests.helpers import RunningServer, ServerFactory, run_score

Y = [0, 1, 0, 1, 1, 0]


def training(marker: Any) -> pd.DataFrame:
    city = pd.Series(["p", marker, "l", marker, "b", "p"], dtype=object)
    return pd.DataFrame({"city": city, "n": [1.0, 2, 3, 4, 5, 6]})


def pipeline(front: Any) -> Any:
    encode = make_column_transformer((front, ["city"]), remainder="passthrough")
    return make_pipeline(encode, LogisticRegression())


MODELS: dict[str, tuple[Callable[[], Any], Any]] = {
    # an imputer that reads None as missing (and refuses NaN)
    "imputed-none": (
        lambda: pipeline(
            make_pipeline(
                SimpleImputer(missing_values=None, strategy="constant", fill_value="unknown"),
                OneHotEncoder(handle_unknown="ignore"),
            )
        ),
        None,
    ),
    # an encoder that learned None as a category (NaN is then an unknown category)
    "encoded-none": (lambda: pipeline(OneHotEncoder(handle_unknown="ignore")), None),
    # an encoder that learned NaN as a category (None is then an unknown category)
    "encoded-nan": (lambda: pipeline(OneHotEncoder(handle_unknown="ignore")), math.nan),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("missing")
    factory = ServerFactory(folder)
    found: dict[str, Any] = {}
    try:
        for name, (build, marker) in MODELS.items():
            model = build().fit(training(marker), Y)
            path = folder / f"{name}.joblib"
            joblib.dump(model, path)
            found[name] = (model, marker, path, factory.spawn(str(path), name="m"))
        yield {
            name: (model, marker, path, factory.ready(server, timeout=60))
            for name, (model, marker, path, server) in found.items()
        }
    finally:
        factory.stop_all()


def sklearn_answer(model: Any, marker: Any, n: float) -> list[float]:
    row = pd.DataFrame({"city": pd.Series([marker], dtype=object), "n": [n]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(model.predict_proba(row)[0])


def v1(server: RunningServer, instance: Any) -> list[float]:
    response = httpx.post(
        f"{server.url}/v1/models/m:predict",
        json={"instances": [instance], "parameters": {"outputs": ["predict_proba"]}},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return list(response.json()["predict_proba"][0])


def v2(server: RunningServer, inputs: list[dict[str, Any]]) -> list[float]:
    response = httpx.post(
        f"{server.url}/v2/models/m/infer",
        json={"inputs": inputs, "outputs": [{"name": "predict_proba"}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return list(response.json()["outputs"][0]["data"])


@pytest.mark.parametrize("name", list(MODELS))
def test_null_reaches_the_model_as_the_marker_it_was_fitted_with(
    served: dict[str, Any], name: str
) -> None:
    model, marker, _, server = served[name]
    expected = sklearn_answer(model, marker, 2.0)
    try:
        other = sklearn_answer(model, math.nan if marker is None else None, 2.0)
    except ValueError:  # the imputer refuses the other marker outright
        pass
    else:
        assert not np.allclose(expected, other), "the markers must answer differently here"
    np.testing.assert_allclose(v1(server, [None, 2.0]), expected, rtol=1e-9)
    np.testing.assert_allclose(v1(server, {"city": None, "n": 2.0}), expected, rtol=1e-9)
    matrix = [{"name": "x", "shape": [1, 2], "datatype": "BYTES", "data": [None, 2.0]}]
    np.testing.assert_allclose(v2(server, matrix), expected, rtol=1e-9)
    columns = [
        {"name": "city", "shape": [1], "datatype": "BYTES", "data": [None]},
        {"name": "n", "shape": [1], "datatype": "FP64", "data": [2.0]},
    ]
    np.testing.assert_allclose(v2(server, columns), expected, rtol=1e-9)


def test_score_gives_an_empty_csv_cell_as_the_marker_the_model_knows(
    served: dict[str, Any], tmp_path: Path
) -> None:
    model, marker, path, _ = served["encoded-none"]
    source = tmp_path / "rows.csv"
    source.write_text("city,n\n,2.0\np,3.0\n")  # read_csv gives NaN for the empty cell
    result = run_score(
        "--model_uri", str(path), "--input", str(source), "--output", str(tmp_path / "out.csv"),
        "--outputs", "predict_proba",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    scored = pd.read_csv(tmp_path / "out.csv")
    first = scored.filter(like="predict_proba").iloc[0].tolist()
    np.testing.assert_allclose(first, sklearn_answer(model, marker, 2.0), rtol=1e-9)


def test_a_model_that_cannot_say_which_marker_it_knows_refuses_a_missing_string(
    server: ServerFactory, tmp_path: Path
) -> None:
    front = make_pipeline(FunctionTransformer(none_as_word), OneHotEncoder(handle_unknown="ignore"))
    path = tmp_path / "model.joblib"
    joblib.dump(pipeline(front).fit(training(None), Y), path)
    running = server.start(str(path), name="m", timeout=60)
    response = httpx.post(
        f"{running.url}/v1/models/m:predict", json={"instances": [[None, 2.0]]}, timeout=30
    )
    assert response.status_code == 400
    assert response.json()["error"] == (
        "row 0, feature 'city': got a missing value (null); this model cannot take one there"
    )
    assert (
        "feature 'city': the model answers a missing string given as None and as NaN "
        "differently, and no imputer or encoder says which it was fitted with; a missing "
        "value there is refused"
    ) in running.log()
    assert v1(running, ["p", 2.0])  # a row without a missing value is answered
