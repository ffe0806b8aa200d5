"""A/B experiments through a real server process: fixed shares and sticky callers.

Two arms at 50/50 with ``--sticky_header x-user-id``. Each caller's requests (REST v1, REST v2
and gRPC with the key in the metadata) all land on one arm, the arm ``bandit.sticky`` gives
in this process (so every replica, restarted or not, agrees). Requests without the header go
by weight. Feedback works as for a bandit, and the per-arm series (requests, pulls, rewards,
the fixed share) are in ``/metrics``. A restarted server keeps every caller on their arm.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import grpc
import httpx
import pytest
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from prometheus_client.parser import text_string_to_metric_families

from predictor.bandit.sticky import sticky_arm
from tests.helpers import RunningServer, ServerFactory, infer_request
from tests.integration.test_bandit import ROW, arms, versions

pytestmark = pytest.mark.timeout(300)
__all__ = ["arms"]  # the fixture


def experiment_args(arms: dict[str, Path], weights: str, *extra: str) -> list[str]:
    return [
        "--experiment_model_uris", f"{arms['A']},{arms['B']}",
        "--experiment_weights", weights, *extra,
    ]  # fmt: skip


def arm_of(server: RunningServer, user: str | None, protocol: str = "v1") -> str:
    headers = {"x-user-id": user} if user is not None else {}
    if protocol == "v1":
        reply = httpx.post(
            f"{server.url}/v1/models/model:predict", json={"instances": ROW}, headers=headers
        )
    else:
        inputs = [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": ROW}]
        reply = httpx.post(
            f"{server.url}/v2/models/model/infer", json={"inputs": inputs}, headers=headers
        )
    assert reply.status_code == 200, reply.text
    return reply.headers["x-model-version"]


def test_each_caller_keeps_one_arm_on_every_protocol_and_after_a_restart(
    server: ServerFactory, arms: dict[str, Path]
) -> None:
    args = experiment_args(arms, "50,50", "--sticky_header", "X-User-Id")
    running = server.start(None, args=args)
    by_version = versions(arms)
    ordered = list(by_version)  # the arms' versions, in the order of the URIs
    ordered.sort(key=lambda v: "AB".index(by_version[v]))
    users = [f"user-{i}" for i in range(60)]
    expected = {u: ordered[sticky_arm("model", ordered, [50, 50], u)] for u in users}
    assert set(expected.values()) == set(ordered)  # both arms have callers
    stub = GRPCInferenceServiceStub(grpc.insecure_channel(running.grpc_target))
    for user in users:
        seen = {arm_of(running, user, "v1") for _ in range(3)} | {arm_of(running, user, "v2")}
        reply = stub.ModelInfer(infer_request("model", ROW), metadata=(("x-user-id", user),))
        seen.add(reply.model_version)
        assert seen == {expected[user]}, user

    # Every request carries the header: rewards are still read back and exported.
    answer = httpx.post(
        f"{running.url}/v1/models/model:predict", json={"instances": ROW},
        headers={"x-user-id": users[0]},
    )  # fmt: skip
    httpx.post(
        f"{running.url}/v2/models/model/feedback", json={"id": answer.json()["id"], "reward": 1}
    )
    arm_of(running, users[0])
    series = per_arm(running, by_version)
    assert series[("predictor_bandit_feedback_total", by_version[expected[users[0]]])] == 1

    restarted = server.start(None, args=args)
    assert {u: arm_of(restarted, u) for u in users} == expected


def test_without_the_header_requests_go_by_weight_and_the_arms_are_measured(
    server: ServerFactory, arms: dict[str, Path]
) -> None:
    running = server.start(
        None, args=experiment_args(arms, "80,20", "--sticky_header", "x-user-id")
    )
    by_version = versions(arms)
    counts = Counter(by_version[arm_of(running, None)] for _ in range(400))
    assert 0.7 <= counts["A"] / 400 <= 0.9, counts  # 80% expected; 0.7..0.9 is 5 sigma wide

    series = per_arm(running, by_version)
    assert series[("predictor_requests_total", "A")] == counts["A"]
    assert series[("predictor_requests_total", "B")] == counts["B"]
    assert series[("predictor_bandit_pulls_total", "A")] == counts["A"]
    assert series[("predictor_bandit_selection_probability", "A")] == pytest.approx(0.8)
    assert series[("predictor_bandit_selection_probability", "B")] == pytest.approx(0.2)

    answer = httpx.post(f"{running.url}/v1/models/model:predict", json={"instances": ROW})
    answered = by_version[answer.headers["x-model-version"]]
    feedback = httpx.post(
        f"{running.url}/v2/models/model/feedback", json={"id": answer.json()["id"], "reward": 1}
    )
    assert feedback.status_code == 200 and feedback.json()["recorded"] is True
    arm_of(running, None)  # a feedback is read back at the next request, and exported
    series = per_arm(running, by_version)
    assert series[("predictor_bandit_feedback_total", answered)] == 1
    assert series[("predictor_bandit_rewards_total", answered)] == 1


def per_arm(server: RunningServer, by_version: dict[str, str]) -> dict[tuple[str, str], float]:
    """Each series with a version label, summed by (name, arm), v1 requests only."""
    series: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{server.url}/metrics").text):
        for sample in family.samples:
            version = sample.labels.get("version")
            if version in by_version and sample.labels.get("protocol", "v1") == "v1":
                key = (sample.name, by_version[version])
                series[key] = series.get(key, 0.0) + sample.value
    return series


def test_a_sticky_header_without_an_experiment_is_refused_at_start(
    server: ServerFactory, arms: dict[str, Path]
) -> None:
    started = server.spawn(
        None,
        args=["--bandit_model_uris", f"{arms['A']},{arms['B']}", "--sticky_header", "x-user-id"],
    )
    assert started.process.wait(timeout=60) == 2
    assert "sticky_header" in started.log_path.read_text()
