"""The input schema, outputs and missing-value support read from fitted models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingRegressor, IsolationForest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.svm import LinearSVC

from predictor.bundle.sample import sample_features
from predictor.errors import PublishError
from predictor.inference.introspect import signature_of
from predictor.inference.signature import OutputSpec

X = np.random.default_rng(0).normal(size=(60, 3))
Y = (X[:, 0] > 0).astype(int)
FRAME = pd.DataFrame(
    {"city": ["a", "b", "c"] * 20, "size": np.arange(60.0), "kind": ["x", "y"] * 30}
)


def test_string_columns_come_from_the_column_transformer_and_its_encoders() -> None:
    pipeline = make_pipeline(
        ColumnTransformer(
            [
                (
                    "cat",
                    make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()),
                    ["city"],
                ),
                (
                    "ord",
                    OrdinalEncoder(),
                    make_column_selector(dtype_include=object, pattern="kind"),
                ),
                ("num", StandardScaler(), ["size"]),
            ]
        ),
        LogisticRegression(),
    ).fit(FRAME, Y)
    signature = signature_of(pipeline)
    assert signature.feature_names == ("city", "size", "kind")
    assert signature.feature_dtypes == ("BYTES", "FP64", "BYTES")
    # the imputer takes a missing city; the scaler and the ordinal encoder do not
    assert signature.nan_features == (True, False, False)


def test_an_imputing_pipeline_takes_missing_values_that_its_tags_do_not_declare() -> None:
    signature = signature_of(make_pipeline(SimpleImputer(), LogisticRegression()).fit(X, Y))
    assert signature.nan_features == (True, True, True)
    plain = signature_of(LogisticRegression().fit(X, Y))
    assert plain.nan_features == (False, False, False)
    boosted = signature_of(HistGradientBoostingRegressor(max_iter=5).fit(X, X[:, 0]))
    assert boosted.nan_features == (True, True, True)


def test_a_text_pipeline_takes_one_document_per_row() -> None:
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(
        ["good", "bad"] * 5, [1, 0] * 5
    )
    signature = signature_of(model)
    assert (signature.text, signature.n_features, signature.feature_dtypes) == (True, 1, ("BYTES",))
    assert signature.outputs == ("predict", "predict_proba", "decision_function")


def test_every_output_with_its_type_and_shape() -> None:
    svc = signature_of(LinearSVC().fit(X, np.where(Y, "yes", "no")))
    assert svc.task == "classification" and svc.classes == ("no", "yes")
    assert svc.available == (
        OutputSpec("predict", "BYTES"),
        OutputSpec("decision_function", "FP64"),
    )
    multi = signature_of(LinearRegression().fit(X, np.c_[X[:, 0], X[:, 1]]))
    assert multi.available == (OutputSpec("predict", "FP64", (2,)),)
    forest = signature_of(IsolationForest(n_estimators=5, random_state=0).fit(X))
    assert forest.task == "outlier_detection"
    assert forest.outputs == ("predict", "decision_function", "score_samples")
    assert forest.output("predict").datatype == "INT64"
    kmeans = signature_of(KMeans(n_clusters=2, n_init=1, random_state=0).fit(X))
    assert kmeans.task == "clustering"
    assert kmeans.available == (
        OutputSpec("predict", "INT64"),
        OutputSpec("transform", "FP64", (2,)),
    )


def test_a_sample_names_each_feature_type_and_must_hold_every_named_column() -> None:
    model = make_pipeline(
        ColumnTransformer(
            [("cat", OneHotEncoder(), ["city", "kind"]), ("num", StandardScaler(), ["size"])]
        ),
        LogisticRegression(),
    ).fit(FRAME, Y)
    signature = signature_of(model)

    features = sample_features(FRAME[["kind", "size", "city"]], signature)  # any order

    assert features == [
        {"name": "city", "dtype": "BYTES"},
        {"name": "size", "dtype": "FP64", "mean": pytest.approx(float(np.mean(FRAME["size"])))},
        {"name": "kind", "dtype": "BYTES"},
    ]
    assert signature.lacking(["city", "size", "kind", "extra"]) is None
    with pytest.raises(
        PublishError, match=r"the sample lacks the feature column\(s\) kind; the model takes: city"
    ):
        sample_features(FRAME[["size", "city"]], signature)


@pytest.mark.parametrize("kind", ["MultiOutputClassifier", "RandomForestClassifier"])
def test_a_classifier_of_several_outputs_serves_labels_and_says_why_not_probabilities(
    kind: str, tmp_path: Path
) -> None:
    import joblib
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.multioutput import MultiOutputClassifier

    from predictor.errors import UnsupportedOutputError
    from predictor.loading.gate import answer, load_accepted
    from predictor.settings import Settings

    x = np.random.default_rng(0).normal(size=(100, 3))
    two = np.where(x[:, 1] > 0.5, "left", np.where(x[:, 1] < -0.5, "right", "mid"))
    y = np.stack([np.where(x[:, 0] > 0, "up", "down"), two], axis=1)  # 2 and 3 classes
    estimator = (
        MultiOutputClassifier(LogisticRegression())
        if kind == "MultiOutputClassifier"
        else RandomForestClassifier(n_estimators=5, random_state=0)
    ).fit(x, y)
    joblib.dump(estimator, tmp_path / "model.joblib")

    loaded = load_accepted(Settings(model_uri=str(tmp_path)))

    assert loaded.signature.outputs == ("predict",)
    assert loaded.engine.name == "scikit-learn"
    labels = answer(loaded, {"instances": x[:4].tolist()})["predict"]
    assert labels == estimator.predict(x[:4]).tolist()
    with pytest.raises(UnsupportedOutputError, match="has no predict_proba; it gives: predict"):
        answer(loaded, {"instances": x[:1].tolist(), "parameters": {"outputs": ["predict_proba"]}})
