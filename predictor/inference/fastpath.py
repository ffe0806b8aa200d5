"""Compiled fast path: predict without scikit-learn's per-call overhead, verified before use.

For linear models and tree ensembles (decision trees, random forests, extra trees, gradient
boosting), alone or last in a ``Pipeline`` (``pipelines``), the fitted parameters are packed into
numpy arrays once, and prediction avoids
scikit-learn's per-call overhead (see ``engines`` and ``trees`` for how each kind is evaluated;
small and large batches take different paths, and both are verified). A compiled
model is only used after it has answered a set of probe rows exactly as scikit-learn does (labels
identical, probabilities and values within ``TOLERANCE``); otherwise, or for any other estimator,
the predictor uses scikit-learn and says why. Inputs with NaN go to scikit-learn (the trees'
missing-value rules are not compiled).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from predictor.inference.engines import Engine, LinearEngine, SklearnEngine
from predictor.inference.native import NATIVE_TOLERANCE, NativeUnavailableError, OnnxEngine, convert
from predictor.inference.pipelines import compile_pipeline, is_pipeline
from predictor.inference.trees import (
    FORESTS,
    TREES,
    BoostingEngine,
    TreeEngine,
    tree_structures,
)

logger = logging.getLogger(__name__)

TOLERANCE = 1e-9
"""Largest difference allowed between compiled and scikit-learn probabilities or values."""


# Exact classes, by scikit-learn package and name: subclasses may change behaviour, and matching
# by name spares importing every estimator family at start-up.
LINEAR = {
    ("sklearn.linear_model", n)
    for n in ("LinearRegression", "Ridge", "Lasso", "ElasticNet", "LogisticRegression")
}
BOOSTING = ("sklearn.ensemble", "GradientBoostingClassifier")


def compile_estimator(estimator: Any) -> Engine | None:
    """A compiled model for the estimator's exact type, or None when there is none.

    A ``Pipeline`` is compiled when its last step is (``predictor.inference.pipelines``).
    """
    if is_pipeline(estimator):
        return compile_pipeline(estimator, compile_estimator)
    kind = type(estimator)
    key = (".".join(kind.__module__.split(".")[:2]), kind.__name__)
    if key in LINEAR:
        return LinearEngine(estimator)
    if key in FORESTS:
        return TreeEngine(estimator, [t.tree_ for t in estimator.estimators_], average=True)
    if key in TREES:
        return TreeEngine(estimator, [estimator.tree_], average=True)
    if key == BOOSTING and getattr(estimator, "init", None) is None:
        return BoostingEngine(estimator)
    return None


def choose_engine(
    estimator: Any,
    probes: Any,
    *,
    enabled: bool,
    is_classifier: bool,
    compile_with: Callable[[Any], Engine | None] | None = None,
) -> tuple[Engine, str]:
    """The engine to serve with, and why: compiled when it matches scikit-learn on ``probes``.

    ``compile_with`` replaces ``compile_estimator`` (the one compiler there is).
    """
    fallback = SklearnEngine(estimator)
    if not enabled:
        return fallback, "fast path switched off (PREDICTOR_FAST_PATH=false)"
    compiled = (compile_with or compile_estimator)(estimator)
    if compiled is None:
        return fallback, f"no compiled fast path for {type(estimator).__name__}"
    mismatch = verify(compiled, fallback, probes, is_classifier=is_classifier)
    if mismatch is not None:
        return (
            fallback,
            f"compiled {type(estimator).__name__} differs from scikit-learn ({mismatch})",
        )
    return compiled, f"{compiled.name}, verified against scikit-learn on {len(probes)} probe rows"


def verify(
    compiled: Engine,
    reference: SklearnEngine,
    probes: Any,
    *,
    is_classifier: bool,
    tolerance: float = TOLERANCE,
) -> str | None:
    """Where the compiled model differs from scikit-learn on ``probes``; None when it does not.

    Labels must be identical; probabilities and values may differ by ``tolerance``, relative to
    the larger of 1 and scikit-learn's value.
    """
    rows = probes if compiled.takes_frames else np.asarray(probes, dtype=np.float64)
    # a few rows at a time take another code path than many rows at once: check both
    chunks = [rows[i : i + 8] for i in range(0, len(rows), 8)]
    try:
        if is_classifier:
            want = np.asarray(reference.predict(probes))
            expected = reference.predict_proba(probes)
            pieces = [compiled.predict_and_proba(chunk) for chunk in chunks]
            by_chunk = (
                np.concatenate([labels for labels, _ in pieces]),
                np.concatenate([proba for _, proba in pieces]),
            )
            whole = compiled.predict_and_proba(rows)
            for labels in (whole[0], by_chunk[0], compiled.predict(rows)):
                if not np.array_equal(want, np.asarray(labels)):
                    return f"{int(np.sum(want != np.asarray(labels)))} labels differ"
            answers = [whole[1], by_chunk[1]]
        else:
            expected = reference.predict(probes)
            answers = [compiled.predict(rows), np.concatenate(list(map(compiled.predict, chunks)))]
        scale = np.maximum(1.0, np.abs(np.asarray(expected, dtype=np.float64)))
        gap = max(float(np.max(np.abs(expected - answer) / scale)) for answer in answers)
    except (ValueError, TypeError, IndexError, AttributeError) as e:
        return f"{type(e).__name__}: {e}"
    if not gap <= tolerance:
        return f"largest difference {gap:.3g} > {tolerance:g}"
    return None


def choose_native(
    estimator: Any,
    model: bytes | None,
    probes: Any,
    *,
    is_classifier: bool,
    threads: int,
    origin: str,
) -> tuple[OnnxEngine | None, str]:
    """The native engine for ``model`` (converted here when None), verified; or None and why.

    ``origin`` says where the ONNX model came from, for the reason.
    """
    try:
        if model is None:
            model = convert(estimator, np.asarray(probes).shape[1])
        native = OnnxEngine(estimator, model, threads=threads)
    except NativeUnavailableError as e:
        return None, str(e)
    mismatch = verify(
        native,
        SklearnEngine(estimator),
        probes,
        is_classifier=is_classifier,
        tolerance=NATIVE_TOLERANCE,
    )
    if mismatch is not None:
        return None, f"{native.name} differs from scikit-learn ({mismatch})"
    return native, (
        f"{native.name}, {origin}, verified against scikit-learn on {len(probes)} probe rows"
    )


def probe_rows(
    estimator: Any, n_features: int, extra: list[list[float]], *, count: int = 256, seed: int = 0
) -> np.ndarray:
    """Rows to verify a compiled model on: the bundle's acceptance rows plus synthetic ones.

    For trees the synthetic values sit on and around the split thresholds, where a wrong
    comparison would show; otherwise they are drawn around zero on several scales.
    """
    rng = np.random.default_rng(seed)
    synthetic = rng.normal(size=(count, n_features)) * rng.choice(
        [0.1, 1.0, 10.0, 100.0], size=(count, 1)
    )
    trees = tree_structures(estimator)
    if trees:
        for j in range(n_features):
            cuts = np.concatenate([t.threshold[t.feature == j] for t in trees])
            if cuts.size:
                picks = rng.choice(cuts, size=count)
                synthetic[:, j] = picks + rng.choice([-1e-3, 0.0, 1e-3], size=count) * np.maximum(
                    np.abs(picks), 1.0
                )
    rows = (
        np.asarray(extra, dtype=np.float64).reshape(-1, n_features)
        if extra
        else np.empty((0, n_features))
    )
    return np.vstack([rows, synthetic])


__all__ = [
    "Engine",
    "SklearnEngine",
    "choose_engine",
    "choose_native",
    "compile_estimator",
    "probe_rows",
    "verify",
]
