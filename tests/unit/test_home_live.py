"""The home page's live numbers from two snapshots of the metrics, against hand calculations."""

from __future__ import annotations

import pytest

from predictor.home.live import Snapshot, numbers


def snapshot(at: float, requests: dict[str, float], buckets: dict[str, float]) -> Snapshot:
    samples = [
        ("predictor_requests_total", {"model": "m", "version": "1", "status": s}, v)
        for s, v in requests.items()
    ]
    samples += [
        ("predictor_request_duration_seconds_bucket", {"model": "m", "protocol": "v1", "le": le}, v)
        for le, v in buckets.items()
    ]
    samples += [("predictor_requests_total", {"model": "other", "status": "500"}, 99.0)]
    return Snapshot(at, tuple(samples))


def test_counters_are_read_between_two_snapshots_and_errors_are_the_servers() -> None:
    before = snapshot(0, {"200": 10, "400": 5}, {"0.01": 10, "0.1": 15, "+Inf": 15})
    now = snapshot(300, {"200": 100, "400": 5, "500": 4, "UNAVAILABLE": 1},
                   {"0.01": 50, "0.1": 105, "+Inf": 110})  # fmt: skip

    since_start = numbers("m", now, None)
    recent = numbers("m", now, before)

    assert since_start["requests"] == 110 and recent["requests"] == 95
    assert recent["seconds"] == 300
    assert recent["error_ratio"] == pytest.approx(5 / 95)  # 400s are the caller's
    # recent buckets: 40 at <=10 ms, 90 at <=100 ms, 95 in all; the median (rank 47.5) lies in
    # (10, 100] ms at (47.5 - 40) / 50 of the way
    assert recent["p50_ms"] == pytest.approx(10 + 90 * 7.5 / 50)
    # p99 (rank 94.05) lies in the +Inf bucket: its lower bound, as Prometheus answers
    assert recent["p99_ms"] == pytest.approx(100)
    assert since_start["p50_ms"] == pytest.approx(10 + 90 * (55 - 50) / 55)


def test_a_model_with_no_traffic_has_no_ratios() -> None:
    empty = numbers("m", Snapshot(0, ()), None)
    assert empty["requests"] == 0
    assert empty["error_ratio"] is None and empty["p50_ms"] is None
