"""Recording what the server does into the series of ``metrics.series``, per model and version."""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np

from predictor.inference.signature import PREDICT, PREDICT_PROBA, Signature
from predictor.metrics.handles import ValueHandle, labelled
from predictor.metrics.series import (
    BATCH_ROWS,
    CACHE,
    IN_FLIGHT,
    LATENCY,
    LOAD_SECONDS,
    MODEL_INFO,
    MODEL_READY,
    OVERLOAD_REFUSALS,
    PREDICTED_CLASS,
    REGRESSION_VALUE,
    REQUESTS,
    TOP_PROBABILITY,
)

__all__ = ["labelled"]


def model_loaded(
    name: str, version: str, *, sha256: str, runtime: dict[str, str], seconds: float, engine: str
) -> None:
    """Record which model this process serves, with which engine, and how long it took to load."""
    MODEL_INFO.labels(
        name, version, sha256, engine, runtime["scikit-learn"], runtime["numpy"], runtime["python"]
    ).set(1)
    LOAD_SECONDS.labels(name, version).set(seconds)
    MODEL_READY.labels(name).set(1)


PROTOCOLS = ("v1", "v2", "grpc")


def known_at_load(name: str, version: str, classes: tuple[object, ...] | None) -> None:
    """Create, at 0, the series whose labels are known once a model is loaded.

    A series that appears only with its first event reads as "no data" on a dashboard and in an
    alert's expression, not as 0.
    """
    OVERLOAD_REFUSALS.labels(name)
    IN_FLIGHT.labels(name)  # an autoscaler reads "no series" as an error, or as nothing to do
    for protocol in PROTOCOLS:
        REQUESTS.labels(name, version, protocol, "200")
        LATENCY.labels(name, version, protocol)
    BATCH_ROWS.labels(name, version)
    for result in ("hit", "miss"):
        CACHE.labels(name, version, result)
    for label in classes or ():
        PREDICTED_CLASS.labels(name, version, str(label))


def engine_switched(
    name: str, version: str, *, sha256: str, runtime: dict[str, str], before: str, after: str
) -> None:
    """The model now answers with engine ``after``: the info series moves to that label."""
    versions = (runtime["scikit-learn"], runtime["numpy"], runtime["python"])
    MODEL_INFO.labels(name, version, sha256, before, *versions).set(0)
    MODEL_INFO.labels(name, version, sha256, after, *versions).set(1)


def model_draining(name: str) -> None:
    """The model takes no new traffic from now on (readiness is false)."""
    MODEL_READY.labels(name).set(0)


def overload_refused(name: str) -> None:
    """Count one request refused at the in-flight limit."""
    labelled(OVERLOAD_REFUSALS, name).inc()


def observe_request(name: str, version: str, protocol: str, status: str, seconds: float) -> None:
    """Count one finished request and its latency."""
    labelled(REQUESTS, name, version, protocol, status).inc()
    labelled(LATENCY, name, version, protocol).observe(seconds)


def observe_predictions(
    name: str, version: str, signature: Signature, results: dict[str, np.ndarray], rows: int
) -> None:
    """Record the distribution of what the model predicted for one request.

    By the estimator's task: classes (from labels or probabilities), regression values (every
    output of a multi-output regressor), cluster or inlier/outlier labels; transformers record
    nothing but the row count.
    """
    if signature.task in ("clustering", "outlier_detection") and PREDICT in results:
        found, seen = np.unique(np.asarray(results[PREDICT]), return_counts=True)
        for label, count in zip(found.tolist(), seen.tolist(), strict=True):
            labelled(PREDICTED_CLASS, name, version, str(label)).inc(count)
        return
    if signature.classes is None and signature.task == "classification":
        labelled(PREDICTED_CLASS, name, version, "").inc(rows)  # several outputs: rows only
        return
    if signature.classes is None:
        values = results.get(PREDICT)
        if values is not None:
            flat = np.asarray(values, dtype=np.float64).ravel()
            labelled(REGRESSION_VALUE, name, version).observe_many(flat)
        labelled(PREDICTED_CLASS, name, version, "").inc(rows)
        return
    proba = results.get(PREDICT_PROBA)
    classes = signature.classes
    if PREDICT in results:
        labels = np.asarray(results[PREDICT])
        if labels.size <= FEW_ROWS:  # a dictionary lookup a row beats a comparison a class
            counts, position = [0] * len(classes), class_positions(classes)
            for label in labels.tolist():
                at = position.get(label)
                if at is not None:
                    counts[at] += 1
        else:
            counts = [int(np.count_nonzero(labels == label)) for label in classes]
    elif proba is not None:
        counts = np.bincount(np.argmax(proba, axis=1), minlength=len(classes)).tolist()
    else:
        return
    for counter, count in zip(class_counters(name, version, classes), counts, strict=True):
        if count:
            counter.inc(count)
    if proba is not None:
        labelled(TOP_PROBABILITY, name, version).observe_many(np.max(proba, axis=1))


FEW_ROWS = 8
"""Up to this many labels, classes are counted row by row (one lookup each)."""


@functools.cache
def class_positions(classes: tuple[Any, ...]) -> dict[Any, int]:
    """Each class label's position in ``classes`` (remembered)."""
    return {label: i for i, label in enumerate(classes)}


@functools.cache
def class_counters(name: str, version: str, classes: tuple[Any, ...]) -> tuple[ValueHandle, ...]:
    """The ``predictor_predictions`` counter of each class, in ``classes`` order (remembered)."""
    return tuple(labelled(PREDICTED_CLASS, name, version, str(label)) for label in classes)


def observe_batch(name: str, version: str, rows: int) -> None:
    """Record the rows of one call into the model (several requests when batched)."""
    labelled(BATCH_ROWS, name, version).observe(rows)


def observe_cache(name: str, version: str, hit: bool) -> None:
    """Count one prediction-cache lookup."""
    labelled(CACHE, name, version, "hit" if hit else "miss").inc()


class InFlight:
    """Context manager counting a request in flight and timing it."""

    def __init__(self, name: str) -> None:
        self._gauge = labelled(IN_FLIGHT, name)
        self.started = 0.0

    def __enter__(self) -> InFlight:
        self._gauge.inc()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._gauge.dec()

    @property
    def elapsed(self) -> float:
        """Seconds since the request started."""
        return time.perf_counter() - self.started
