"""Prometheus metrics per model and model version, correct with several uvicorn workers.

KServe exports four latency histograms labelled by model name only. These add what operators and
the canary analysis need: requests and errors by model, version, protocol and status; latency;
in-flight requests; batch sizes; cache hits; a ``model_info`` gauge (version, digest, library
versions); model load time; and the distribution of predictions (counts per predicted class, the
top-class probability, a histogram for regression), which canary analysis compares between
versions. With ``--workers`` above 1, ``__main__`` sets ``PROMETHEUS_MULTIPROC_DIR`` before
anything imports prometheus_client, and ``/metrics`` aggregates every worker's values.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from predictor.inference.signature import PREDICT, PREDICT_PROBA, Signature
from predictor.metric_handles import ValueHandle, labelled

__all__ = ["labelled"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
PROBABILITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
REGRESSION_BUCKETS = (-1000.0, -100.0, -10.0, -1.0, 0.0, 1.0, 10.0, 100.0, 1000.0, 10000.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
"""Read once at import: whether several worker processes share the metric files."""

REQUESTS = Counter(
    "predictor_requests",
    "Inference requests by model, version, protocol (v1, v2, grpc) and status code.",
    ["model", "version", "protocol", "status"],
)
LATENCY = Histogram(
    "predictor_request_duration_seconds",
    "Time from request to response, by model, version and protocol.",
    ["model", "version", "protocol"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "predictor_in_flight_requests",
    "Inference requests being served now.",
    ["model"],
    multiprocess_mode="livesum",
)
BATCH_ROWS = Histogram(
    "predictor_batch_rows",
    "Rows per call into the estimator.",
    ["model", "version"],
    buckets=BATCH_BUCKETS,
)
CACHE = Counter(
    "predictor_cache_lookups",
    "Prediction cache lookups by result (hit or miss).",
    ["model", "version", "result"],
)
MODEL_INFO = Gauge(
    "predictor_model_info",
    "The model being served (always 1), with its version, digest and library versions.",
    ["model", "version", "sha256", "engine", "sklearn", "numpy", "python"],
    multiprocess_mode="max",
)
MODEL_READY = Gauge(
    "predictor_model_ready",
    "1 while the model takes traffic; 0 while it drains before a shutdown.",
    ["model"],
    multiprocess_mode="livemin",
)
OVERLOAD_REFUSALS = Counter(
    "predictor_overload_refusals",
    "Requests refused at once because PREDICTOR_MAX_IN_FLIGHT were being served.",
    ["model"],
)
LOAD_SECONDS = Gauge(
    "predictor_model_load_seconds",
    "Seconds spent fetching, verifying, unpickling and accepting the model.",
    ["model", "version"],
    multiprocess_mode="max",
)
PREDICTED_CLASS = Counter(
    "predictor_predictions",
    "Predicted rows by class (classifiers; class is empty for regressors).",
    ["model", "version", "class"],
)
TOP_PROBABILITY = Histogram(
    "predictor_prediction_top_probability",
    "Probability of the predicted class, for rows where probabilities were computed.",
    ["model", "version"],
    buckets=PROBABILITY_BUCKETS,
)
REGRESSION_VALUE = Histogram(
    "predictor_prediction_value",
    "Predicted values of regressors.",
    ["model", "version"],
    buckets=REGRESSION_BUCKETS,
)


def model_loaded(
    name: str, version: str, *, sha256: str, runtime: dict[str, str], seconds: float, engine: str
) -> None:
    """Record which model this process serves, with which engine, and how long it took to load."""
    MODEL_INFO.labels(
        name, version, sha256, engine, runtime["scikit-learn"], runtime["numpy"], runtime["python"]
    ).set(1)
    LOAD_SECONDS.labels(name, version).set(seconds)
    MODEL_READY.labels(name).set(1)


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


def exposition() -> bytes:
    """Every metric in text format, aggregated over worker processes when there are several."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
