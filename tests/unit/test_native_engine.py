"""The native engine: models converted to ONNX and run by ONNX Runtime, verified before they serve."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from kserve.model_repository import ModelRepository
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor
from xgboost import XGBClassifier, XGBRegressor

from predictor.inference.engine_choice import select_engine
from predictor.inference.engines import EngineSlot, LinearEngine, SklearnEngine
from predictor.inference.fastpath import choose_native, probe_rows
from predictor.inference.introspect import signature_of
from predictor.inference.native import OnnxEngine, convert, convertible
from predictor.server.model import SklearnModel
from predictor.server.model_server import start_native_engines
from predictor.settings import Settings
from tests.helpers import await_native_engines

RNG = np.random.default_rng(3)
X = RNG.normal(size=(400, 5))
BINARY = (X[:, 0] + X[:, 1] > 0).astype(int)
THREE = np.array(["low", "mid", "high"])[np.digitize(X[:, 0], [-0.5, 0.5])]
VALUES = 40 * X[:, 0] - 7 * X[:, 2] ** 2

CLASSIFIERS = [
    RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0).fit(X, BINARY),
    RandomForestClassifier(n_estimators=30, random_state=0).fit(X, THREE),
    GradientBoostingClassifier(n_estimators=30, random_state=0).fit(X, THREE),
    HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, BINARY),
    XGBClassifier(n_estimators=30, max_depth=4).fit(X, BINARY),
    LGBMClassifier(n_estimators=30, verbose=-1).fit(X, BINARY),
    make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=20, random_state=0)).fit(
        X, THREE
    ),
]
REGRESSORS = [
    DecisionTreeRegressor(max_depth=6, random_state=0).fit(X, VALUES),
    ExtraTreesRegressor(n_estimators=30, random_state=0).fit(X, VALUES),
    GradientBoostingRegressor(n_estimators=30, random_state=0).fit(X, VALUES),
    HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(X, VALUES),
    XGBRegressor(n_estimators=30, max_depth=4).fit(X, VALUES),
    LGBMRegressor(n_estimators=30, verbose=-1).fit(X, VALUES),
    make_pipeline(SimpleImputer(), GradientBoostingRegressor(n_estimators=20)).fit(X, VALUES),
]


def native(estimator: Any, *, classifier: bool) -> tuple[OnnxEngine | None, str]:
    probes = probe_rows(estimator, X.shape[1], X[:20].tolist())
    return choose_native(
        estimator, None, probes, is_classifier=classifier, threads=1, origin="converted here"
    )


@pytest.mark.parametrize("estimator", CLASSIFIERS, ids=lambda e: type(e).__name__)
def test_classifiers_run_natively_with_scikit_learns_labels(estimator: Any) -> None:
    engine, reason = native(estimator, classifier=True)
    assert engine is not None, reason
    assert reason.startswith("ONNX Runtime ") and "verified against scikit-learn" in reason
    rows = RNG.normal(size=(300, 5)) * 2
    labels, proba = engine.predict_and_proba(rows)
    np.testing.assert_array_equal(labels, estimator.predict(rows))
    np.testing.assert_allclose(proba, estimator.predict_proba(rows), rtol=0, atol=1e-5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)  # a distribution
    np.testing.assert_array_equal(engine.predict(rows[:1]), estimator.predict(rows[:1]))


@pytest.mark.parametrize("estimator", REGRESSORS, ids=lambda e: type(e).__name__)
def test_regressors_run_natively_within_float32_of_scikit_learn(estimator: Any) -> None:
    engine, reason = native(estimator, classifier=False)
    assert engine is not None, reason
    rows = RNG.normal(size=(300, 5)) * 2
    want = estimator.predict(rows)
    np.testing.assert_allclose(engine.predict(rows), want, rtol=1e-5, atol=1e-5)
    assert engine.predict(rows).shape == want.shape


def test_other_estimators_stay_where_they_are() -> None:
    for estimator in (LogisticRegression().fit(X, BINARY), KNeighborsClassifier().fit(X, BINARY)):
        assert not convertible(estimator)
        engine, reason = native(estimator, classifier=True)
        assert engine is None
        assert reason == f"no native conversion for {type(estimator).__name__}"


def test_a_native_model_that_differs_from_the_pickle_never_serves() -> None:
    served = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, BINARY)
    other = RandomForestClassifier(n_estimators=20, random_state=1).fit(X, 1 - BINARY)
    probes = probe_rows(served, X.shape[1], [])
    engine, reason = choose_native(
        served, convert(other, 5), probes, is_classifier=True, threads=1, origin="from the bundle"
    )
    assert engine is None
    assert "differs from scikit-learn" in reason and "labels differ" in reason


def test_a_corrupt_native_model_is_refused_with_a_reason() -> None:
    served = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, BINARY)
    probes = probe_rows(served, X.shape[1], [])
    engine, reason = choose_native(
        served, b"not an onnx model", probes, is_classifier=True, threads=1, origin="bundle"
    )
    assert engine is None
    assert reason.startswith("ONNX Runtime refused the model")


def test_rows_with_nan_go_to_scikit_learn() -> None:
    estimator = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, BINARY)
    engine, _ = native(estimator, classifier=True)
    assert engine is not None
    rows = X[:10].copy()
    rows[::3, 2] = np.nan
    np.testing.assert_array_equal(engine.predict_proba(rows), estimator.predict_proba(rows))


def test_the_engine_pickles_as_its_model_and_opens_a_session_again() -> None:
    estimator = CLASSIFIERS[0]
    engine, _ = native(estimator, classifier=True)
    assert engine is not None
    copy = pickle.loads(pickle.dumps(engine))
    assert copy.session is not engine.session
    np.testing.assert_array_equal(copy.predict_proba(X[:50]), engine.predict_proba(X[:50]))


def test_one_thread_per_inference_unless_asked() -> None:
    estimator = CLASSIFIERS[0]
    probes = probe_rows(estimator, 5, [])
    one, _ = choose_native(estimator, None, probes, is_classifier=True, threads=1, origin="here")
    two, _ = choose_native(estimator, None, probes, is_classifier=True, threads=2, origin="here")
    assert one is not None and two is not None
    assert one.session.get_session_options().intra_op_num_threads == 1
    assert two.session.get_session_options().intra_op_num_threads == 2


def test_a_bare_pickle_serves_at_once_and_upgrades_later() -> None:
    estimator = CLASSIFIERS[1]
    signature = signature_of(estimator)
    slot, upgrade = select_engine(estimator, signature, Settings(model_uri="unused.joblib").engines)
    assert upgrade is not None
    assert slot.name.startswith("compiled RandomForestClassifier")
    assert slot.reason.endswith("; native engine: converting in the background")
    before = slot.predict_proba(X[:30])
    assert upgrade.run(slot)
    assert slot.switched and slot.name.startswith("ONNX Runtime ")
    assert "converted in the background" in slot.reason
    np.testing.assert_allclose(slot.predict_proba(X[:30]), before, rtol=0, atol=1e-5)
    assert not upgrade.run(slot)  # once switched, there is nothing more to do


def test_a_served_bare_pickle_converts_only_once_the_server_has_built_its_app(
    tmp_path: Path,
) -> None:
    # A conversion swaps the process's warning filters, which is not thread-safe: it must not
    # run while the server builds its routes, so loading starts none and the server starts it.
    joblib.dump(CLASSIFIERS[1], tmp_path / "model.joblib")
    model = SklearnModel("forest", settings=Settings(model_uri=str(tmp_path / "model.joblib")))
    model.load()
    assert model.ready
    assert not [t for t in threading.enumerate() if t.name.startswith("native-engine-")]
    assert model.loaded.engine.name.startswith("compiled RandomForestClassifier")
    registry = ModelRepository()
    registry.update(model)
    start_native_engines(registry)
    await_native_engines()
    assert model.loaded.engine.name.startswith("ONNX Runtime ")


def test_a_failed_upgrade_keeps_the_engine_and_says_why() -> None:
    estimator = CLASSIFIERS[0]
    slot = EngineSlot(SklearnEngine(estimator), "scikit-learn")
    signature = signature_of(estimator)
    _, upgrade = select_engine(estimator, signature, Settings(model_uri="unused.joblib").engines)
    assert upgrade is not None
    broken = type(upgrade)(LogisticRegression().fit(X, BINARY), upgrade.probes, True, 1, "kept")
    assert not broken.run(slot)
    assert slot.engine.name == "scikit-learn"
    assert slot.reason == "kept; native engine: no native conversion for LogisticRegression"


def test_the_switches_turn_the_native_engine_off() -> None:
    estimator = CLASSIFIERS[0]
    signature = signature_of(estimator)
    for settings in (
        Settings(model_uri="unused.joblib", native_engine=False),
        Settings(model_uri="unused.joblib", fast_path=False),
    ):
        slot, upgrade = select_engine(estimator, signature, settings.engines)
        assert upgrade is None
        assert "native engine" not in slot.reason


def test_linear_models_keep_the_compiled_engine() -> None:
    estimator = LogisticRegression().fit(X, BINARY)
    slot, upgrade = select_engine(
        estimator, signature_of(estimator), Settings(model_uri="unused.joblib").engines
    )
    assert upgrade is None
    assert isinstance(slot.engine, LinearEngine)


def test_a_bundles_native_model_serves_without_building_the_compiled_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    estimator = CLASSIFIERS[0]
    signature = signature_of(estimator)
    settings = Settings(model_uri="unused.joblib")
    model = convert(estimator, 5)

    def no_compiled_engine(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the compiled engine was built")

    monkeypatch.setattr("predictor.inference.engine_choice.choose_engine", no_compiled_engine)
    slot, upgrade = select_engine(estimator, signature, settings.engines, native_model=model)
    assert upgrade is None
    assert isinstance(slot.engine, OnnxEngine) and "from the bundle" in slot.reason
    monkeypatch.undo()
    other = RandomForestClassifier(n_estimators=5, random_state=1).fit(X, 1 - BINARY)
    slot, upgrade = select_engine(
        estimator, signature, settings.engines, native_model=convert(other, 5)
    )
    assert upgrade is None
    assert slot.name.startswith("compiled RandomForestClassifier")
    assert "; native engine: ONNX Runtime" in slot.reason and "differs" in slot.reason
