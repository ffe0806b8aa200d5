"""Multi-armed bandit routing through real server processes, and its state in a real Redis.

Two arms; arm B is rewarded with probability 0.7 and arm A with 0.3. Over 1,600 requests, each
followed by its feedback, every policy must send at least 80% of the last 400 to B. Every
response names its arm (``model_version``) and carries an id (v1 too, with ``x-request-id``).
Feedback for an unknown id is 404, a reward outside [0, 1] is 400, and a second reward for the
same id changes nothing. With ``--bandit_state redis://``, what was learned survives a restart.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import joblib
import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LogisticRegression

from predictor.stores.files import sha256_file
from tests.helpers import RunningServer, ServerFactory, free_port
from tests.tcp_proxy import TCPProxy

pytestmark = pytest.mark.timeout(300)

ROW = [[0.5, -0.2, 1.0]]
REWARD = {"A": 0.3, "B": 0.7}


@pytest.fixture(scope="module")
def arms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("arms")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 3))
    paths = {}
    for name, column in (("A", 0), ("B", 1)):
        path = folder / f"{name}.joblib"
        joblib.dump(LogisticRegression().fit(x, (x[:, column] > 0).astype(int)), path)
        paths[name] = path
    return paths


def versions(arms: dict[str, Path]) -> dict[str, str]:
    """Arm name by the version its responses carry (a bare file's digest prefix)."""
    return {sha256_file(path)[:12]: name for name, path in arms.items()}


def bandit_args(arms: dict[str, Path], policy: str, *extra: str) -> list[str]:
    uris = f"{arms['A']},{arms['B']}"
    return ["--bandit_model_uris", uris, "--bandit_policy", policy, *extra]


def play(server: RunningServer, arms: dict[str, Path], rounds: int, seed: int) -> list[str]:
    """``rounds`` requests, each rewarded as its arm's coin says; the arms that answered."""
    by_version = versions(arms)
    rng = np.random.default_rng(seed)
    chosen = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(rounds):
            answer = client.post("/v1/models/model:predict", json={"instances": ROW})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            arm = by_version[body["model_version"]]
            assert answer.headers["x-model-version"] == body["model_version"]
            assert answer.headers["x-request-id"] == body["id"]
            reward = float(rng.random() < REWARD[arm])
            feedback = client.post(
                "/v2/models/model/feedback", json={"id": body["id"], "reward": reward}
            )
            assert feedback.status_code == 200, feedback.text
            chosen.append(arm)
    return chosen


@pytest.mark.parametrize("policy", ["thompson", "epsilon_greedy", "ucb1"])
def test_every_policy_learns_to_send_most_traffic_to_the_better_arm(
    server: ServerFactory, arms: dict[str, Path], policy: str
) -> None:
    running = server.start(None, args=bandit_args(arms, policy))

    chosen = play(running, arms, 1600, seed=1)

    last = chosen[-400:]
    assert last.count("B") >= 0.8 * len(last), f"{policy}: {last.count('B')} of 400 to B"
    assert "A" in chosen  # it explored
    counted = {}  # the request metrics name the arm that answered, as the responses do
    text = httpx.get(f"{running.url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "predictor_requests_total" and sample.labels["protocol"] == "v1":
                counted[versions(arms)[sample.labels["version"]]] = sample.value
    assert counted == {"A": chosen.count("A"), "B": chosen.count("B")}


def test_responses_name_their_arm_and_feedback_is_checked(
    server: ServerFactory, arms: dict[str, Path]
) -> None:
    running = server.start(None, args=bandit_args(arms, "thompson"))
    by_version = versions(arms)
    v2 = httpx.post(
        f"{running.url}/v2/models/model/infer",
        json={
            "id": "q-1",
            "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": ROW}],
        },
    )
    assert v2.status_code == 200 and v2.json()["id"] == "q-1"
    assert v2.json()["model_version"] in by_version
    binary = httpx.post(  # binary outputs: the JSON part names the arm, and so do the headers
        f"{running.url}/v2/models/model/infer",
        json={
            "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": ROW}],
            "parameters": {"binary_data_output": True},
        },
    )
    assert binary.status_code == 200, binary.text
    header = json.loads(binary.content[: int(binary.headers["inference-header-content-length"])])
    assert header["model_version"] in by_version
    assert binary.headers["x-model-version"] == header["model_version"]
    assert binary.headers["x-request-id"] == header["id"]
    v2_counted = {
        s.labels["version"]: s.value
        for family in text_string_to_metric_families(httpx.get(f"{running.url}/metrics").text)
        for s in family.samples
        if s.name == "predictor_requests_total" and s.labels["protocol"] == "v2" and s.value
    }
    expected: dict[str, float] = {}
    for answered in (v2.json()["model_version"], header["model_version"]):
        expected[answered] = expected.get(answered, 0) + 1
    assert v2_counted == expected  # each counted as the arm that answered
    stub = GRPCInferenceServiceStub(grpc.insecure_channel(running.grpc_target))
    request = pb.ModelInferRequest(model_name="model")
    tensor = request.inputs.add(name="x", datatype="FP64", shape=[1, 3])
    tensor.contents.fp64_contents.extend(ROW[0])
    reply = stub.ModelInfer(request)
    assert reply.model_version in by_version and reply.id  # a new id, to give feedback for
    grpc_counted = [
        s.labels["version"]
        for family in text_string_to_metric_families(httpx.get(f"{running.url}/metrics").text)
        for s in family.samples
        if s.name == "predictor_requests_total" and s.labels["protocol"] == "grpc" and s.value
    ]
    assert grpc_counted == [reply.model_version]  # counted as the arm that answered

    feedback = f"{running.url}/v2/models/model/feedback"
    first = httpx.post(feedback, json={"id": reply.id, "reward": 1})
    again = httpx.post(feedback, json={"id": reply.id, "reward": 0})
    assert first.json() == {"id": reply.id, "recorded": True}
    assert again.status_code == 200 and again.json() == {"id": reply.id, "recorded": False}
    assert httpx.post(feedback, json={"id": "q-1", "reward": 0.5}).status_code == 200
    unknown = httpx.post(feedback, json={"id": "never-given", "reward": 1})
    assert unknown.status_code == 404 and "no response with that id" in unknown.json()["error"]
    for bad in ({"id": reply.id, "reward": 1.5}, {"id": reply.id}, {"reward": 1}, [1]):
        refused = httpx.post(feedback, json=bad)
        assert refused.status_code == 400, bad
    plain = server.start(str(arms["A"]), name="plain")
    not_bandit = httpx.post(f"{plain.url}/v2/models/plain/feedback", json={"id": "x", "reward": 1})
    assert not_bandit.status_code == 404


def test_each_arm_can_be_pinned_by_its_digest(server: ServerFactory, arms: dict[str, Path]) -> None:
    a, b = sha256_file(arms["A"]), sha256_file(arms["B"])
    pinned = server.start(
        None, args=bandit_args(arms, "ucb1", "--bandit_model_sha256s", f"{a},{b}")
    )
    answer = httpx.post(f"{pinned.url}/v1/models/model:predict", json={"instances": ROW})
    assert answer.status_code == 200 and answer.json()["model_version"] == a[:12]  # ucb1: A first

    wrong = bandit_args(arms, "ucb1", "--bandit_model_sha256s", f"{a},{a}")
    refused = server.run_to_exit(None, args=wrong)
    assert refused.process.returncode == 1, refused.log()
    assert "sha256" in refused.log()
    miscounted = server.run_to_exit(
        None, args=bandit_args(arms, "ucb1", "--bandit_model_sha256s", a)
    )
    assert miscounted.process.returncode == 2, miscounted.log()
    assert "expected one digest per arm (2), got 1" in miscounted.log()


def metric(server: RunningServer, name: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{server.url}/metrics").text):
        for sample in family.samples:
            if sample.name == name:
                found[versions_cache[sample.labels["version"]]] = sample.value
    return found


versions_cache: dict[str, str] = {}


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; `make test` installs it (apt-get)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_state_in_redis_survives_a_restart(
    server: ServerFactory, arms: dict[str, Path], redis_url: str
) -> None:
    versions_cache.update(versions(arms))
    args = bandit_args(arms, "thompson", "--bandit_state", redis_url)
    first = server.start(None, args=args)
    chosen = play(first, arms, 300, seed=2)
    first.stop()

    second = server.start(None, args=args)
    httpx.post(f"{second.url}/v1/models/model:predict", json={"instances": ROW})

    learned = metric(second, "predictor_bandit_feedback_total")
    assert learned == {"A": chosen.count("A"), "B": chosen.count("B")}
    probability = metric(second, "predictor_bandit_selection_probability")
    assert probability["B"] > probability["A"]
    again = play(second, arms, 100, seed=3)
    assert again.count("B") >= 80


def test_every_arm_is_listed_and_reachable_by_its_version(
    server: ServerFactory, arms: dict[str, Path]
) -> None:
    running = server.start(None, name="model", args=bandit_args(arms, "thompson"))
    a, b = (sha256_file(arms[n])[:12] for n in ("A", "B"))
    with httpx.Client(base_url=running.url, timeout=10) as client:
        home = client.get("/", headers={"accept": "application/json"}).json()
        metadata = client.get("/v2/models/model").json()
        of_b = client.get(f"/v2/models/model/versions/{b}")
        ready_b = client.get(f"/v2/models/model/versions/{b}/ready")
        infer_b = client.post(
            f"/v2/models/model/versions/{b}/infer",
            json={"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": ROW}]},
        )
        unknown = client.get("/v2/models/model/versions/nope")
    (entry,) = home["models"]
    assert entry["versions"] == [
        {"version": a, "sha256": sha256_file(arms["A"])},
        {"version": b, "sha256": sha256_file(arms["B"])},
    ]
    assert metadata["versions"] == [a, b]
    assert of_b.status_code == 200, of_b.text
    assert of_b.json()["parameters"]["sha256"] == sha256_file(arms["B"])
    assert of_b.headers["x-model-version"] == b
    assert ready_b.status_code == 200
    assert infer_b.status_code == 200, infer_b.text
    assert infer_b.json()["model_version"] == b  # the arm named, not the bandit's choice
    assert infer_b.headers["x-model-version"] == b
    assert unknown.status_code == 404
    assert unknown.json() == {"error": f"model model has no such version; it serves {[a, b]!r}"}


def samples(server: RunningServer, name: str) -> list[tuple[dict[str, str], float]]:
    text = httpx.get(f"{server.url}/metrics").text
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def test_redis_cut_off_routing_goes_on_feedback_waits_and_nothing_acknowledged_is_lost(
    server: ServerFactory, arms: dict[str, Path], redis_url: str
) -> None:
    import redis

    host, port = redis_url.removeprefix("redis://").removesuffix("/0").split(":")
    proxy = TCPProxy((host, int(port)))
    running = server.start(
        None, args=bandit_args(arms, "thompson", "--bandit_state", f"redis://{proxy.address}/0")
    )
    by_version = versions(arms)
    acknowledged = 0
    answered = 0
    with httpx.Client(base_url=running.url, timeout=10) as client:

        def ask() -> dict[str, object]:
            nonlocal answered
            reply = client.post("/v1/models/model:predict", json={"instances": ROW})
            assert reply.status_code == 200, reply.text
            answered += 1
            return dict(reply.json())

        # Down before the state was ever read: routed uniformly, both arms answer.
        proxy.cut()
        uniform = [by_version[str(ask()["model_version"])] for _ in range(60)]
        assert set(uniform) == {"A", "B"}
        assert dict(samples(running, "predictor_bandit_state_up")[0][0]) == {"model": "model"}
        assert samples(running, "predictor_bandit_state_up")[0][1] == 0
        proxy.restore()
        time.sleep(1.2)  # the state is asked again at most every second

        for _ in range(40):  # up: learned from, every feedback acknowledged
            body = ask()
            feedback = client.post(
                "/v2/models/model/feedback", json={"id": body["id"], "reward": 1.0}
            )
            assert feedback.status_code == 200, feedback.text
            acknowledged += 1

        proxy.cut()
        during = [ask() for _ in range(50)]
        refused = client.post(
            "/v2/models/model/feedback", json={"id": during[0]["id"], "reward": 1.0}
        )
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "2"
        assert refused.json()["error"].startswith("the bandit's state (Redis) is unreachable")
        routed = {
            labels["source"]: v
            for labels, v in samples(running, "predictor_bandit_fallback_routed_total")
        }
        assert routed == {"uniform": 60, "last_known": 50}, routed
        assert samples(running, "predictor_bandit_pulls_held")[0][1] == 50

        proxy.restore()
        time.sleep(1.2)
        for body in during:  # held pulls are written: their feedback is now recorded
            feedback = client.post(
                "/v2/models/model/feedback", json={"id": body["id"], "reward": 0.0}
            )
            assert feedback.status_code == 200, feedback.text
            assert feedback.json()["recorded"] is True
            acknowledged += 1
        assert samples(running, "predictor_bandit_state_up")[0][1] == 1

    store = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = "predictor:bandit:model"
    feedbacks = sum(int(v) for v in store.hgetall(f"{keys}:feedbacks").values())
    pulls = sum(int(v) for v in store.hgetall(f"{keys}:pulls").values())
    assert feedbacks == acknowledged == 90
    assert pulls == answered == 150  # held while it was down, written when it came back
    log = running.log()
    assert log.count("bandit state unreachable") == 2, log
    assert "routing from the last state read, feedback answered 503" in log
    assert "50 pull(s) held while it was down are written" in log
    proxy.close()
