"""The ``/metrics`` text: every series, aggregated over worker processes when there are several."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from predictor.metrics.series import MULTIPROCESS

CONTENT_TYPE = CONTENT_TYPE_LATEST


def exposition() -> bytes:
    """Every metric in text format, aggregated over worker processes when there are several."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def current_samples() -> list[tuple[str, dict[str, str], float]]:
    """Every sample now, as ``/metrics`` would give it: (name, labels, value)."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in registry.collect()
        for sample in family.samples
    ]
