"""The request path's metric handles expose exactly what prometheus_client's own calls would."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from predictor.metrics import record as metrics
from predictor.protocol.tensors import new_id

BOUNDS = (0.001, 0.01, 0.1, 1.0, 10.0)
# on every bound, between, below, above all, negative, zero, infinite and not a number
VALUES = [*BOUNDS, 0.0005, 0.005, 0.05, 0.5, 5.0, 50.0, -3.0, 0.0, math.inf, 1e-12, math.nan]


def exposition(registry: CollectorRegistry) -> list[str]:
    # `_created` samples carry the time each child was made, which differs between registries.
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def fresh(kind: type, **kwargs: object) -> tuple[CollectorRegistry, object]:
    registry = CollectorRegistry()
    return registry, kind("handled", "help", ["model"], registry=registry, **kwargs)


def test_histogram_handle_observes_as_prometheus_client_does() -> None:
    expected_registry, expected = fresh(Histogram, buckets=BOUNDS)
    one_registry, one = fresh(Histogram, buckets=BOUNDS)
    many_registry, many = fresh(Histogram, buckets=BOUNDS)
    for value in VALUES:
        expected.labels("m").observe(value)  # type: ignore[attr-defined]
        metrics.labelled(one, "m").observe(value)
    metrics.labelled(many, "m").observe_many(np.array(VALUES))
    assert exposition(one_registry) == exposition(expected_registry)
    assert exposition(many_registry) == exposition(expected_registry)
    # the +Inf bucket holds every value but NaN; the sum is NaN, as prometheus_client leaves it
    assert 'handled_bucket{le="+Inf",model="m"} 15.0' in exposition(expected_registry)


def test_counter_and_gauge_handles_move_the_same_values() -> None:
    for kind in (Counter, Gauge):
        expected_registry, expected = fresh(kind)
        handled_registry, handled = fresh(kind)
        expected.labels("m").inc(5)  # type: ignore[attr-defined]
        metrics.labelled(handled, "m").inc(5)
        if kind is Gauge:
            expected.labels("m").dec(2)  # type: ignore[attr-defined]
            metrics.labelled(handled, "m").dec(2)
        assert exposition(handled_registry) == exposition(expected_registry)


def test_handles_are_made_once_per_label_set() -> None:
    _, counter = fresh(Counter)
    assert metrics.labelled(counter, "m") is metrics.labelled(counter, "m")
    assert metrics.labelled(counter, "m") is not metrics.labelled(counter, "other")


def test_response_ids_are_random_version_4_uuids() -> None:
    ids = [new_id() for _ in range(1500)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_the_series_known_at_load_start_at_zero(demo_model_dir: Path) -> None:
    from predictor.metrics.exposition import exposition
    from predictor.server.model import SklearnModel
    from predictor.settings import Settings

    model = SklearnModel("zeroes", settings=Settings(model_uri=str(demo_model_dir)))
    model.load()
    version = model.version
    page = exposition().decode()
    assert 'predictor_overload_refusals_total{model="zeroes"} 0.0' in page
    for protocol in ("v1", "v2", "grpc"):
        assert (
            f'predictor_requests_total{{model="zeroes",protocol="{protocol}",status="200",'
            f'version="{version}"}} 0.0'
        ) in page
    for label in ("long", "medium", "short"):
        assert (
            f'predictor_predictions_total{{class="{label}",model="zeroes",version="{version}"}} 0.0'
        ) in page
    assert (
        f'predictor_cache_lookups_total{{model="zeroes",result="miss",version="{version}"}} 0.0'
        in page
    )
