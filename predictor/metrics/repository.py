"""Recording what the model repository does: loads, evictions, failures, and what is held."""

from __future__ import annotations

from prometheus_client.metrics import MetricWrapperBase

from predictor.metrics import series
from predictor.metrics.handles import drop_series, first_label
from predictor.metrics.kserve_series import forget_model
from predictor.metrics.series import (
    REPOSITORY_BYTES,
    REPOSITORY_EVICTIONS,
    REPOSITORY_LOAD_FAILURES,
    REPOSITORY_LOADED,
    REPOSITORY_LOADS,
)


def held(models: int, size: int) -> None:
    """The repository holds ``models`` models of ``size`` bytes in all."""
    REPOSITORY_LOADED.set(models)
    REPOSITORY_BYTES.set(size)


def loaded() -> None:
    """A model was loaded."""
    REPOSITORY_LOADS.inc()


def load_failed(name: str) -> None:
    """Model ``name`` failed to load."""
    REPOSITORY_LOAD_FAILURES.labels(name).inc()


def unloaded(name: str, *, evicted: bool) -> None:
    """Model ``name`` is no longer served: every series of its own goes.

    Loaded again, its counters start from 0, which Prometheus reads as a counter reset (rates
    stay right). So a repository's series are those of the models it holds, not of every model
    it ever served. The repository's own counters (loads, evictions, failures) stay.
    """
    if evicted:
        REPOSITORY_EVICTIONS.inc()
    for metric in PER_MODEL:
        drop_series(metric, name)
    forget_model(name)  # KServe's own histograms


PER_MODEL = [
    metric
    for metric in vars(series).values()
    if isinstance(metric, MetricWrapperBase)
    and first_label(metric) == "model"
    and metric is not REPOSITORY_LOAD_FAILURES
]
"""The series of one model (its load failures excepted: they are what an alert counts)."""
