"""The A/B experiment's report from a real Prometheus, and ``promote`` against the API emulator.

A real server runs two arms at 50/50; arm B is rewarded with probability 0.7 and arm A with
0.3. A real Prometheus scrapes it every second. ``canary experiment report`` (the CLI, as a
user runs it) first says the sample is too small to call, then, with enough rewards, gives each
arm's sample size and mean reward exactly as counted in the test, and calls B best.

``canary experiment promote`` replaces the experiment's settings with the chosen arm's model in
one merge patch, in both places a predictor keeps its env, with the audit annotations and an
Event; an arm that is not in the experiment is refused and nothing is sent.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from predictor.rollout.audit import ACTION, TO_VERSION
from predictor.rollout.cli import run
from tests.helpers import REPO_ROOT, RunningServer, ServerFactory
from tests.integration.test_bandit import REWARD, ROW, arms, versions
from tests.integration.test_experiment import experiment_args
from tests.integration.test_rollout_k8s import emulator, patches_sent
from tests.k8s_emulator import CRD, ISVC, Emulator, crd, knative_isvc, write_kubeconfig
from tests.prometheus_server import running_prometheus

pytestmark = pytest.mark.timeout(300)
__all__ = ["arms", "emulator"]  # fixtures

OLD, NEW = "gs://models/registry/taxi/1.0.0/", "gs://models/registry/taxi/1.1.0/"


def play(
    server: RunningServer, by_version: dict[str, str], rounds: int, rng: np.random.Generator
) -> tuple[Counter[str], Counter[str]]:
    """``rounds`` requests, each rewarded 0 or 1 by its arm's coin: feedback and reward counts."""
    feedbacks: Counter[str] = Counter()
    rewards: Counter[str] = Counter()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(rounds):
            body = client.post("/v1/models/model:predict", json={"instances": ROW}).json()
            arm = by_version[body["model_version"]]
            reward = int(rng.random() < REWARD[arm])
            sent = client.post(
                "/v2/models/model/feedback", json={"id": body["id"], "reward": reward}
            )
            assert sent.json()["recorded"] is True
            feedbacks[arm] += 1
            rewards[arm] += reward
        client.post("/v1/models/model:predict", json={"instances": ROW})  # exports the last
    return feedbacks, rewards


def scraped(prometheus: str, total: int) -> None:
    """Wait until Prometheus holds ``total`` rewards received."""
    query = 'sum(predictor_bandit_feedback_total{model="model"})'
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}).json()
        found = result["data"]["result"]
        if found and float(found[0]["value"][1]) == total:
            return
        time.sleep(0.3)
    raise AssertionError(f"Prometheus never held {total} rewards")


def report(prometheus: str) -> str:
    done = subprocess.run(
        [sys.executable, "scripts/canary.py", "experiment", "report", "model",
         "--prometheus", prometheus, "--window", "5m"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def rows(text: str) -> dict[str, list[str]]:
    """The report's table rows by arm version."""
    found = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and re.fullmatch(r"[0-9a-f]{12}", cells[0]):
            found[cells[0]] = cells
    return found


def test_the_report_says_too_small_then_calls_the_better_arm(
    server: ServerFactory, arms: dict[str, Path], tmp_path: Path
) -> None:
    running = server.start(None, args=experiment_args(arms, "50,50"))
    by_version = versions(arms)
    version_of = {arm: v for v, arm in by_version.items()}
    rng = np.random.default_rng(11)
    with running_prometheus([running.http_port], tmp_path) as prometheus:
        feedbacks, rewards = play(running, by_version, 40, rng)
        scraped(prometheus, 40)
        early = report(prometheus)
        assert early.strip().splitlines()[-1].startswith("too small to call: arm ")

        more_feedbacks, more_rewards = play(running, by_version, 500, rng)
        feedbacks, rewards = feedbacks + more_feedbacks, rewards + more_rewards
        scraped(prometheus, 540)
        text = report(prometheus)
    table = rows(text)
    for arm in "AB":
        cells = table[version_of[arm]]
        assert int(cells[4]) == feedbacks[arm]  # rewards received (n)
        assert float(cells[5]) == pytest.approx(rewards[arm] / feedbacks[arm], abs=5e-5)
        assert feedbacks[arm] <= int(cells[1]) <= feedbacks[arm] + 2  # + the 2 exporting ones
        assert cells[2] == "0.0000"  # no failures
    assert text.strip().splitlines()[-1] == f"{version_of['B']} is best"


def experiment_isvc(style: str) -> dict[str, Any]:
    document = knative_isvc()
    env = [
        {"name": "PREDICTOR_EXPERIMENT_MODEL_URIS", "value": f"{OLD},{NEW}"},
        {"name": "PREDICTOR_EXPERIMENT_MODEL_SHA256S", "value": f"{'a' * 64},{'b' * 64}"},
        {"name": "PREDICTOR_EXPERIMENT_WEIGHTS", "value": "90,10"},
        {"name": "PREDICTOR_STICKY_HEADER", "value": "x-user-id"},
        {"name": "PREDICTOR_DOWNLOAD_DIR", "value": "/mnt/models"},
    ]
    predictor = document["spec"]["predictor"]
    if style == "runtime":
        del predictor["containers"]
        predictor["model"] = {"modelFormat": {"name": "sklearn"}, "env": env}
    else:
        predictor["containers"][0]["env"] = env
    return document


@pytest.mark.parametrize("style", ["runtime", "container"])
def test_promote_serves_the_chosen_arm_alone(
    emulator: Emulator, tmp_path: Path, style: str
) -> None:
    emulator.put(ISVC, "ml", "taxi", experiment_isvc(style))
    emulator.put(CRD, None, "inferenceservices.serving.kserve.io", crd(with_canary=True))
    common = ["--namespace", "ml", "--kubeconfig", str(write_kubeconfig(emulator, tmp_path / "k"))]
    said: list[str] = []
    assert run(["experiment", "promote", "taxi", "9.9.9", *common], out=said.append) == 2
    assert patches_sent(emulator) == []

    assert run(["experiment", "promote", "taxi", "1.1.0", *common], out=said.append) == 0
    (sent,) = patches_sent(emulator)
    predictor = sent.data["spec"]["predictor"]
    holder = predictor["model"] if style == "runtime" else predictor["containers"][0]
    assert holder["env"] == [
        {"name": "PREDICTOR_MODEL_URI", "value": NEW},
        {"name": "PREDICTOR_MODEL_SHA256", "value": "b" * 64},
        {"name": "PREDICTOR_DOWNLOAD_DIR", "value": "/mnt/models"},
    ]
    notes = sent.data["metadata"]["annotations"]
    assert (notes[ACTION], notes[TO_VERSION]) == ("experiment-promote", "1.1.0")
    assert said[-1] == f"ml/taxi: experiment arm {NEW} promoted: it serves alone"
    events = [r.data["reason"] for r in emulator.requests("POST") if "events" in str(r.url)]
    assert events[-1] == "ExperimentPromoted"
    again = copy.deepcopy(emulator.get(ISVC, "ml", "taxi"))
    assert "PREDICTOR_EXPERIMENT_MODEL_URIS" not in str(again["spec"]["predictor"])
