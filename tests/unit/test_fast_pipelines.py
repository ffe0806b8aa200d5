"""The fast path through pipelines: scalers folded into a linear model, or a compiled last step.

Each engine is chosen as the loader chooses it (verified on probe rows) and then compared with
the whole pipeline on other rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler
from sklearn.svm import SVC

from predictor.inference.fastpath import choose_engine, probe_rows

RNG = np.random.default_rng(11)
X = RNG.normal(loc=[5.0, -3.0, 100.0, 0.0], scale=[2.0, 0.5, 30.0, 1.0], size=(400, 4))
NAMES = ["a", "b", "c", "d"]
Y2 = np.where(X[:, 0] + X[:, 1] > 2, "yes", "no")
Y3 = np.digitize(X[:, 2], [90, 110])
ROWS = RNG.normal(loc=[5.0, -3.0, 100.0, 0.0], scale=[2.0, 0.5, 30.0, 1.0], size=(300, 4))


def engine_for(model: Any, *, frame: bool = False, classifier: bool = True) -> Any:
    probes: Any = probe_rows(model, 4, [])
    if frame:
        probes = pd.DataFrame(probes, columns=NAMES)
    engine, reason = choose_engine(model, probes, enabled=True, is_classifier=classifier)
    return engine, reason


@pytest.mark.parametrize(
    "scalers",
    [
        [StandardScaler()],
        [MinMaxScaler()],
        [MaxAbsScaler()],
        [RobustScaler()],
        [StandardScaler(with_mean=False), MinMaxScaler(), RobustScaler(with_centering=False)],
    ],
)
@pytest.mark.parametrize("labels", [Y2, Y3])
def test_scalers_fold_into_logistic_regression(scalers: list[Any], labels: np.ndarray) -> None:
    model = make_pipeline(*scalers, LogisticRegression(max_iter=1000)).fit(X, labels)

    engine, reason = engine_for(model)

    assert "scalers folded into the linear model" in reason, reason
    assert engine.takes_frames is False
    labels_out, proba = engine.predict_and_proba(ROWS)
    assert np.array_equal(labels_out, model.predict(ROWS))
    np.testing.assert_allclose(proba, model.predict_proba(ROWS), atol=1e-9)
    np.testing.assert_allclose(
        engine.output("decision_function", ROWS), model.decision_function(ROWS), atol=1e-9
    )


def test_scalers_fold_into_a_regressor_fitted_on_a_dataframe() -> None:
    frame = pd.DataFrame(X, columns=NAMES)
    model = make_pipeline(StandardScaler(), Ridge()).fit(frame, X @ [1.0, 2.0, 0.1, -4.0])

    engine, reason = engine_for(model, frame=True, classifier=False)

    assert "folded" in reason
    np.testing.assert_allclose(
        engine.predict(ROWS), model.predict(pd.DataFrame(ROWS, columns=NAMES)), atol=1e-9
    )


def test_a_forest_after_an_imputer_is_compiled_behind_the_front_steps() -> None:
    x = X.copy()
    x[::5, 1] = np.nan
    frame = pd.DataFrame(x, columns=NAMES)
    model = make_pipeline(
        SimpleImputer(), RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0)
    ).fit(frame, Y3)

    engine, reason = engine_for(model, frame=True)

    assert "front in scikit-learn, then compiled RandomForestClassifier" in reason, reason
    rows = pd.DataFrame(ROWS.copy(), columns=NAMES)
    rows.iloc[::3, 2] = np.nan
    labels_out, proba = engine.predict_and_proba(rows)
    assert np.array_equal(labels_out, model.predict(rows))
    np.testing.assert_allclose(proba, model.predict_proba(rows), atol=1e-9)


def test_clipping_scaler_is_not_folded_but_the_linear_model_is_still_compiled() -> None:
    model = make_pipeline(MinMaxScaler(clip=True), LogisticRegression()).fit(X, Y2)

    engine, reason = engine_for(model)

    assert "front in scikit-learn, then compiled LogisticRegression" in reason, reason
    far = ROWS * 10  # outside the fitted range: clipping changes the answer
    np.testing.assert_allclose(engine.predict_proba(far), model.predict_proba(far), atol=1e-9)


def test_a_pipeline_ending_in_an_estimator_without_a_compiled_form_stays_on_scikit_learn() -> None:
    model = make_pipeline(StandardScaler(), SVC()).fit(X, Y2)

    engine, reason = engine_for(model)

    assert engine.name == "scikit-learn"
    assert reason == "no compiled fast path for Pipeline"
