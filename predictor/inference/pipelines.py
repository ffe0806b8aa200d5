"""The fast path through a scikit-learn ``Pipeline``: fold the scalers, or compile the last step.

- **Scalers in front of a linear model** fold into it. Each of ``StandardScaler``,
  ``MinMaxScaler`` (without clipping), ``MaxAbsScaler`` and ``RobustScaler`` maps a feature
  ``x`` to ``a * x + c``, so the pipeline is one linear model of the raw features, with weights
  ``a * w`` and intercept ``b + c @ w``: one matrix product, as for a bare linear model.
- **Anything else in front of a compiled model** (imputers, encoders of numbers, other
  transformers, then a forest, boosting or a linear model): the front steps run in scikit-learn
  (``Pipeline[:-1].transform``) and the last step is compiled; scikit-learn's per-call overhead of
  the last step (for a forest, its thread pool) is what is saved.

Either is verified against the whole pipeline on the probe rows, as any compiled model is.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from predictor.inference.engines import Engine, LinearEngine

Compiler = Callable[[Any], Engine | None]


def _key(estimator: Any) -> tuple[str, str]:
    kind = type(estimator)
    return ".".join(kind.__module__.split(".")[:2]), kind.__name__


PIPELINE = ("sklearn.pipeline", "Pipeline")


def is_pipeline(estimator: Any) -> bool:
    """Whether the estimator is exactly scikit-learn's ``Pipeline``."""
    return _key(estimator) == PIPELINE


def affine(step: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(a, c)`` with ``step.transform(x) == a * x + c`` per feature, or None for other steps."""
    key = _key(step)
    if key == ("sklearn.preprocessing", "StandardScaler"):
        scale = step.scale_ if step.scale_ is not None else 1.0
        mean = step.mean_ if step.with_mean and step.mean_ is not None else 0.0
        a = np.ones(step.n_features_in_) / scale
        return a, -np.asarray(mean) * a
    if key == ("sklearn.preprocessing", "MinMaxScaler") and not step.clip:
        return np.asarray(step.scale_, dtype=np.float64), np.asarray(step.min_, dtype=np.float64)
    if key == ("sklearn.preprocessing", "MaxAbsScaler"):
        return 1.0 / np.asarray(step.scale_), np.zeros(step.n_features_in_)
    if key == ("sklearn.preprocessing", "RobustScaler"):
        scale = step.scale_ if step.scale_ is not None else 1.0
        center = step.center_ if step.center_ is not None else 0.0
        a = np.ones(step.n_features_in_) / scale
        return a, -np.asarray(center) * a
    return None


def compile_pipeline(pipeline: Any, compile_step: Compiler) -> Engine | None:
    """An engine for the pipeline, or None when its last step has no compiled form."""
    steps = [step for _, step in pipeline.steps if step not in (None, "passthrough")]
    if not steps:
        return None
    *front, last = steps
    final = compile_step(last)
    if final is None:
        return None
    names = " > ".join(type(s).__name__ for s in steps)
    if isinstance(final, LinearEngine):
        maps = [affine(step) for step in front]
        if all(m is not None for m in maps):
            folded = LinearEngine(_folded(last, [m for m in maps if m is not None]))
            folded.name = f"compiled Pipeline({names}), scalers folded into the linear model"
            return folded
    if not front:
        return final
    return PipelineEngine(
        pipeline, final, f"Pipeline({names}): front in scikit-learn, then {final.name}"
    )


def _folded(linear: Any, maps: list[tuple[np.ndarray, np.ndarray]]) -> Any:
    """A copy of the fitted linear model that takes the raw features of the scalers in front."""
    a = np.ones_like(maps[0][0], dtype=np.float64)
    c = np.zeros_like(maps[0][1], dtype=np.float64)
    for scale, shift in maps:  # x -> a*x + c, then the next: a2*(a*x + c) + c2
        a, c = a * scale, c * scale + shift
    coef = np.asarray(linear.coef_, dtype=np.float64)
    folded = copy.copy(linear)
    folded.coef_ = coef * a  # (F,) or (K, F): scaled per feature
    folded.intercept_ = np.asarray(linear.intercept_, dtype=np.float64) + coef @ c
    return folded


class PipelineEngine:
    """The front of a pipeline in scikit-learn, its compiled last step after it."""

    takes_frames = True  # the front takes what the pipeline was fitted on (names included)

    def __init__(self, pipeline: Any, final: Engine, name: str) -> None:
        self.pipeline = pipeline
        self.front = pipeline[:-1]
        self.final = final
        self.name = name

    def _transformed(self, features: Any) -> np.ndarray:
        x = self.front.transform(features)
        if hasattr(x, "toarray"):
            x = x.toarray()  # a sparse matrix (one-hot encoders, for one)
        return np.asarray(x, dtype=np.float64)

    def predict(self, features: Any) -> np.ndarray:
        """Labels or values of the compiled last step, on the transformed rows."""
        return self.final.predict(self._transformed(features))

    def predict_proba(self, features: Any) -> np.ndarray:
        """Class probabilities of the compiled last step."""
        return self.final.predict_proba(self._transformed(features))

    def predict_and_proba(self, features: Any) -> tuple[np.ndarray, np.ndarray]:
        """Labels and probabilities, the front transform run once."""
        return self.final.predict_and_proba(self._transformed(features))

    def output(self, name: str, features: Any) -> Any:
        """Other outputs from the pipeline itself."""
        return getattr(self.pipeline, name)(features)
