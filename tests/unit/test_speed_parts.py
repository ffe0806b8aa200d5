"""The parts that make serving fast: compiled models, adaptive batching, the prediction cache."""

from __future__ import annotations

import asyncio
import pickle
import threading
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from predictor.errors import OverloadedError, PayloadError
from predictor.inference.batch import Batch
from predictor.inference.batching import Batcher, ThreadBatcher
from predictor.inference.cache import PredictionCache
from predictor.inference.fastpath import SklearnEngine, choose_engine, compile_estimator, probe_rows
from predictor.server.admission import AdmissionLimit
from predictor.serving.lane import batch_rows_for
from tests.helpers import wait_until

RNG = np.random.default_rng(0)
X = RNG.normal(size=(600, 6))
BINARY = (X[:, 0] + X[:, 1] > 0).astype(int)
THREE = np.array(["low", "mid", "high"])[np.digitize(X[:, 0], [-0.5, 0.5])]


@pytest.mark.parametrize(
    ("estimator", "classifier"),
    [
        (LogisticRegression().fit(X, BINARY), True),
        (LogisticRegression().fit(X, THREE), True),
        (LinearRegression().fit(X, X[:, 2]), False),
        (RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0).fit(X, THREE), True),
        (ExtraTreesRegressor(n_estimators=10, random_state=0).fit(X, X[:, 1]), False),
        (DecisionTreeClassifier(random_state=0).fit(X, BINARY), True),
        (GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, BINARY), True),
        (GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, THREE), True),
    ],
)
def test_compiled_models_match_sklearn_and_are_chosen(estimator: Any, classifier: bool) -> None:
    probes = probe_rows(estimator, 6, X[:20].tolist())
    engine, reason = choose_engine(estimator, probes, enabled=True, is_classifier=classifier)
    assert reason.startswith(f"compiled {type(estimator).__name__}"), reason
    assert reason.endswith(f"verified against scikit-learn on {len(probes)} probe rows")
    for rows in (1, 50, 400):  # trees: walked at once up to WALK_ROWS, tree by tree above
        fresh = RNG.normal(size=(rows, 6)) * 3
        if classifier:
            assert np.array_equal(engine.predict(fresh), estimator.predict(fresh))
            np.testing.assert_allclose(
                engine.predict_proba(fresh), estimator.predict_proba(fresh), rtol=0, atol=1e-9
            )
            labels, proba = engine.predict_and_proba(fresh)
            assert np.array_equal(labels, estimator.predict(fresh))
            np.testing.assert_allclose(proba, estimator.predict_proba(fresh), rtol=0, atol=1e-9)
        else:
            np.testing.assert_allclose(
                engine.predict(fresh), estimator.predict(fresh), rtol=0, atol=1e-9
            )


def test_nan_rows_go_to_sklearn() -> None:
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, BINARY)
    engine = compile_estimator(forest)
    assert engine is not None
    row = X[:1].copy()
    row[0, 2] = np.nan
    np.testing.assert_array_equal(engine.predict_proba(row), forest.predict_proba(row))


def test_a_compiled_model_that_disagrees_is_not_used() -> None:
    model = LogisticRegression().fit(X, BINARY)
    probes = probe_rows(model, 6, [])
    engine = compile_estimator(model)
    assert engine is not None
    engine.intercept = engine.intercept + 1e-6  # type: ignore[attr-defined]
    served, reason = choose_engine(
        model, probes, enabled=True, is_classifier=True, compile_with=lambda _: engine
    )
    assert isinstance(served, SklearnEngine)
    assert reason.startswith("compiled LogisticRegression differs from scikit-learn (")
    np.testing.assert_array_equal(served.predict_proba(X[:5]), model.predict_proba(X[:5]))


def test_the_fast_path_can_be_switched_off_and_falls_back_for_other_estimators() -> None:
    model = LogisticRegression().fit(X, BINARY)
    engine, reason = choose_engine(
        model, probe_rows(model, 6, []), enabled=False, is_classifier=True
    )
    assert isinstance(engine, SklearnEngine)
    assert reason == "fast path switched off (PREDICTOR_FAST_PATH=false)"
    other = HistGradientBoostingClassifier(max_iter=5).fit(X, BINARY)
    engine, reason = choose_engine(
        other, probe_rows(other, 6, []), enabled=True, is_classifier=True
    )
    assert isinstance(engine, SklearnEngine)
    assert reason == "no compiled fast path for HistGradientBoostingClassifier"


def batch(rows: list[list[float]], outputs: tuple[str, ...] = ("predict",)) -> Batch:
    return Batch(features=np.asarray(rows, dtype=np.float64), n_rows=len(rows), outputs=outputs)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, tuple[str, ...]]] = []
        self.batches: list[int] = []

    def run(self, features: Any, outputs: tuple[str, ...]) -> dict[str, np.ndarray]:
        self.calls.append((len(features), outputs))
        if np.any(features < 0):
            raise PayloadError("negative values are refused")
        return {name: features[:, 0] * (2 if name == "predict" else 3) for name in outputs}


async def submit_together(batcher: Batcher, batches: list[Batch]) -> list[Any]:
    return await asyncio.gather(*(batcher.submit(b) for b in batches), return_exceptions=True)


def test_concurrent_requests_share_one_call_and_keep_their_own_rows() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.run, max_rows=64, max_wait_s=0, on_batch=recorder.batches.append)
    requests = [
        batch([[1.0], [2.0]]),
        batch([[3.0]], ("predict_proba",)),
        batch([[4.0], [5.0]], ("predict", "predict_proba")),
    ]
    results = asyncio.run(submit_together(batcher, requests))
    assert recorder.calls == [(5, ("predict", "predict_proba"))]
    assert recorder.batches == [5]
    assert results[0].keys() == {"predict"} and results[0]["predict"].tolist() == [2.0, 4.0]
    assert results[1].keys() == {"predict_proba"} and results[1]["predict_proba"].tolist() == [9.0]
    assert results[2]["predict"].tolist() == [8.0, 10.0] and results[2][
        "predict_proba"
    ].tolist() == [12.0, 15.0]


def test_one_bad_request_never_fails_its_neighbours() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.run, max_rows=64, max_wait_s=0, on_batch=recorder.batches.append)
    results = asyncio.run(
        submit_together(batcher, [batch([[1.0]]), batch([[-1.0]]), batch([[3.0]])])
    )
    assert results[0]["predict"].tolist() == [2.0]
    assert isinstance(results[1], PayloadError)
    assert results[2]["predict"].tolist() == [6.0]
    assert recorder.calls[0] == (3, ("predict",))  # tried together first, then one by one


def test_batches_are_cut_at_max_rows_and_a_lone_request_runs_alone() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.run, max_rows=4, max_wait_s=0, on_batch=recorder.batches.append)
    asyncio.run(submit_together(batcher, [batch([[1.0], [1.0]]) for _ in range(5)]))
    assert recorder.batches == [4, 4, 2]
    asyncio.run(submit_together(batcher, [batch([[1.0]])]))
    assert recorder.batches[-1] == 1


def test_batching_off_runs_each_request_directly() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.run, max_rows=1, max_wait_s=0, on_batch=recorder.batches.append)
    asyncio.run(submit_together(batcher, [batch([[1.0]]), batch([[2.0]])]))
    assert recorder.batches == [1, 1]


class GatedRecorder(Recorder):
    """Holds its first call until ``gate`` opens, so that other callers queue up meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def run(self, features: Any, outputs: tuple[str, ...]) -> dict[str, np.ndarray]:
        if not self.calls:
            self.calls.append((len(features), outputs))
            assert self.gate.wait(timeout=10)
            return {name: features[:, 0] for name in outputs}
        return super().run(features, outputs)


def submit_in_threads(batches: list[Batch], max_rows: int = 64) -> tuple[GatedRecorder, list[Any]]:
    """Submit the first batch, then the others while the model is busy with it."""
    recorder = GatedRecorder()
    batcher = ThreadBatcher(
        recorder.run, max_rows=max_rows, max_wait_s=0, on_batch=recorder.batches.append
    )
    results: list[Any] = [None] * len(batches)

    def submit(i: int) -> None:
        try:
            results[i] = batcher.submit(batches[i])
        except Exception as e:
            results[i] = e

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(batches))]
    threads[0].start()
    wait_until(lambda: recorder.calls, timeout=10, what="the first caller to hold the model")
    for thread in threads[1:]:
        thread.start()
    wait_until(
        lambda: len(batcher._queue) >= len(batches) - 1,
        timeout=10,
        what="the other callers to queue behind it",
        every=0.001,
    )
    recorder.gate.set()
    for thread in threads:
        thread.join(timeout=10)
    return recorder, results


def test_threads_that_queue_share_one_call_and_keep_their_own_rows() -> None:
    recorder, results = submit_in_threads(
        [
            batch([[7.0]]),
            batch([[1.0], [2.0]]),
            batch([[3.0]], ("predict_proba",)),
            batch([[4.0], [5.0]], ("predict", "predict_proba")),
        ]
    )
    assert recorder.calls == [(1, ("predict",)), (5, ("predict", "predict_proba"))]
    assert sorted(recorder.batches) == [1, 5]
    assert results[0]["predict"].tolist() == [7.0]
    assert results[1].keys() == {"predict"} and results[1]["predict"].tolist() == [2.0, 4.0]
    assert results[2].keys() == {"predict_proba"} and results[2]["predict_proba"].tolist() == [9.0]
    assert results[3]["predict"].tolist() == [8.0, 10.0]
    assert results[3]["predict_proba"].tolist() == [12.0, 15.0]


def test_a_bad_request_from_one_thread_never_fails_the_others() -> None:
    recorder, results = submit_in_threads(
        [batch([[7.0]]), batch([[1.0]]), batch([[-1.0]]), batch([[3.0]])], max_rows=2
    )
    assert results[1]["predict"].tolist() == [2.0]
    assert isinstance(results[2], PayloadError)
    assert results[3]["predict"].tolist() == [6.0]
    assert recorder.calls[1] == (2, ("predict",))  # cut at max_rows, tried together first
    assert sorted(recorder.batches) == [1, 1, 1, 1]


def test_serving_state_pickles_empty_for_worker_processes() -> None:
    recorder = Recorder()
    batcher = pickle.loads(
        pickle.dumps(ThreadBatcher(recorder.run, max_rows=8, max_wait_s=0, on_batch=print))
    )
    assert batcher.submit(batch([[1.0]]))["predict"].tolist() == [2.0]
    cache = PredictionCache(size=4)
    key = cache.key("v1", ("predict",), np.ones((1, 2)))
    assert key is not None
    cache.put(key, {"predict": np.asarray([1])})
    copy = pickle.loads(pickle.dumps(cache))
    assert copy.size == 4 and len(copy) == 0
    copy.put(key, {"predict": np.asarray([1])})
    assert len(copy) == 1


def test_admission_limit_refuses_at_the_limit_across_threads() -> None:
    limit = pickle.loads(pickle.dumps(AdmissionLimit(3)))
    inside, release = threading.Barrier(4), threading.Event()

    def hold() -> None:
        with limit.admitted():
            inside.wait(timeout=10)
            release.wait(timeout=10)

    holders = [threading.Thread(target=hold) for _ in range(3)]
    for thread in holders:
        thread.start()
    inside.wait(timeout=10)
    with pytest.raises(OverloadedError), limit.admitted():
        pass
    release.set()
    for thread in holders:
        thread.join(timeout=10)
    assert limit.in_flight == 0
    with limit.admitted():
        assert limit.in_flight == 1


def test_cache_is_bounded_keyed_by_version_and_input() -> None:
    cache = PredictionCache(size=2)
    rows = np.asarray([[1.0, 2.0]])
    first = cache.key("v1", ("predict",), rows)
    assert first is not None
    cache.put(first, {"predict": np.asarray([1])})
    assert cache.get(first) is not None
    assert cache.get(cache.key("v2", ("predict",), rows)) is None  # type: ignore[arg-type]
    assert cache.get(cache.key("v1", ("predict_proba",), rows)) is None  # type: ignore[arg-type]
    keys = [cache.key("v1", ("predict",), np.asarray([[float(i), 0.0]])) for i in range(3)]
    assert None not in keys
    cache.put(keys[0], {"predict": np.asarray([0])})  # type: ignore[arg-type]
    cache.put(keys[1], {"predict": np.asarray([1])})  # type: ignore[arg-type]
    assert cache.get(keys[0]) is not None  # type: ignore[arg-type]  # keys[1] is now the LRU
    cache.put(keys[2], {"predict": np.asarray([2])})  # type: ignore[arg-type]
    assert len(cache) == 2
    # LRU, not FIFO: the entry read last survives, the one left alone is evicted.
    assert cache.get(keys[0]) is not None  # type: ignore[arg-type]
    assert cache.get(keys[1]) is None  # type: ignore[arg-type]
    assert cache.get(keys[2]) is not None  # type: ignore[arg-type]
    assert PredictionCache(size=0).key("v1", ("predict",), rows) is None


def test_tree_ensembles_batch_more_rows_per_call_by_default() -> None:
    x, y = np.random.default_rng(0).normal(size=(50, 3)), np.arange(50) % 2
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y)
    in_pipeline = Pipeline([("scale", StandardScaler()), ("trees", forest)]).fit(x, y)
    linear = LogisticRegression().fit(x, y)
    assert [batch_rows_for(m) for m in (forest, in_pipeline, linear)] == [1024, 1024, 64]
    assert batch_rows_for(DecisionTreeClassifier().fit(x, y)) == 1024
