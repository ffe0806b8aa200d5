"""Webhooks and the manual gate of ``auto``, against a real HTTP server and the API emulator.

A webhook server runs in the test (a real ``http.server`` on 127.0.0.1) and answers each phase
as the test scripts it. The InferenceService lives in the Kubernetes API emulator, driven
through the real ``kubernetes`` client, with KServe's reconciler stood in; the metrics are two
healthy versions. Covered: a ``pre-rollout`` hold (nothing changes), a ``confirm-promotion``
hold then approval (the payload names the service, phase, versions, share and last analysis),
a webhook that times out (retried once, then held), the ``rollback`` webhook rolling back, the
``post-rollout`` webhook told the result, every exchange recorded as an Event; and the manual
gate: ``--pause-before-promote`` then ``resume`` (or ``rollback``), both in the audit.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from predictor.rollout.analysis import AnalysisConfig
from predictor.rollout.audit import ACTION, PHASE
from predictor.rollout.auto import run_auto
from predictor.rollout.cli import run
from predictor.rollout.errors import RolloutFailedError
from predictor.rollout.gates import Gates
from predictor.rollout.webhooks import Webhook, Webhooks
from tests.integration.test_rollout_k8s import HealthyPods, emulator, kserve, patches_sent, rollout
from tests.k8s_emulator import ISVC, Emulator, FakeKServe, write_kubeconfig

pytestmark = pytest.mark.timeout(120)
__all__ = ["emulator", "kserve"]  # fixtures

NEW = "gs://models/registry/taxi/1.1.0/"
CONFIG = AnalysisConfig(
    prometheus="http://127.0.0.1:9",
    min_requests=10,
    max_inconclusive=1,
    stable_version="1.0.0",
    canary_version="1.1.0",
)


class HookServer:
    """Answers each path with the next scripted answer (a status code, or "slow")."""

    def __init__(self) -> None:
        self.script: dict[str, list[int | str]] = {}
        self.received: dict[str, list[dict[str, Any]]] = {}
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hooks.received.setdefault(self.path, []).append(body)
                answers = hooks.script.get(self.path, [200])
                answer = answers.pop(0) if len(answers) > 1 else answers[0]
                if answer == "slow":
                    time.sleep(1.5)
                    answer = 200
                self.send_response(int(answer))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks() -> Iterator[HookServer]:
    server = HookServer()
    try:
        yield server
    finally:
        server.stop()


def gates(server: HookServer, *phases: str, timeout_s: float = 5.0, pause: bool = False) -> Gates:
    webhooks = Webhooks(
        [Webhook(p, server.url(f"/{p}")) for p in phases], timeout_s=timeout_s, retry_after_s=0
    )
    return Gates(webhooks, pause_before_promote=pause)


def auto(emulator: Emulator, kserve: FakeKServe, chosen: Gates, said: list[str]) -> None:
    driver = rollout(emulator, kserve)
    driver.out = said.append
    driver.start(model_uri=NEW, percent=10)
    run_auto(
        driver, steps=[10, 50, 100], interval_s=0.01, config=CONFIG,
        metrics=HealthyPods({}), step_timeout=30, gates=chosen,
    )  # fmt: skip


def events(emulator: Emulator) -> list[tuple[str, str]]:
    posted = [r.data for r in emulator.requests("POST") if "events" in str(r.url)]
    return [(e["reason"], e["message"]) for e in posted]


def test_a_pre_rollout_hold_changes_nothing(
    emulator: Emulator, kserve: FakeKServe, hooks: HookServer
) -> None:
    hooks.script["/pre-rollout"] = [503]
    said: list[str] = []
    with pytest.raises(RolloutFailedError, match="held: the pre-rollout webhook did not approve"):
        auto(emulator, kserve, gates(hooks, "pre-rollout"), said)
    assert len(hooks.received["/pre-rollout"]) == 4  # 2 tries, each retried once on a 5xx
    assert len(patches_sent(emulator)) == 1  # the start only: no step was taken
    held = [m for r, m in events(emulator) if r == "WebhookHeld"]
    assert held[0].endswith("/pre-rollout: HTTP 503, HTTP 503 (no 2xx)")


def test_confirm_promotion_holds_then_approves_and_post_rollout_hears_the_result(
    emulator: Emulator, kserve: FakeKServe, hooks: HookServer
) -> None:
    hooks.script["/confirm-promotion"] = [403, 200]
    said: list[str] = []
    auto(emulator, kserve, gates(hooks, "confirm-promotion", "post-rollout"), said)
    assert "ml/taxi: held by the confirm-promotion webhook; asking again" in said
    assert said[-2] == "ml/taxi: promoted 1.1.0"
    first, second = hooks.received["/confirm-promotion"]  # 403 is final: not retried
    assert first == second
    assert {k: first[k] for k in ("name", "namespace", "phase", "canaryPercent")} == {
        "name": "taxi", "namespace": "ml", "phase": "confirm-promotion", "canaryPercent": 50,
    }  # fmt: skip
    assert (first["stableVersion"], first["canaryVersion"]) == ("1.0.0", "1.1.0")
    assert first["analysis"]["verdict"] == "pass"
    assert first["analysis"]["summary"].startswith("PASS: stable 1.0.0: 600 requests")
    (post,) = hooks.received["/post-rollout"]
    assert (post["phase"], post["result"]) == ("post-rollout", "promoted")
    reasons = [r for r, _ in events(emulator)]
    assert reasons.count("WebhookHeld") == 1 and reasons.count("WebhookApproved") == 2


def test_a_webhook_that_times_out_is_retried_then_holds(
    emulator: Emulator, kserve: FakeKServe, hooks: HookServer
) -> None:
    hooks.script["/confirm-promotion"] = ["slow"]
    said: list[str] = []
    with pytest.raises(RolloutFailedError, match="confirm-promotion webhook did not approve"):
        auto(emulator, kserve, gates(hooks, "confirm-promotion", timeout_s=0.2), said)
    held = [m for r, m in events(emulator) if r == "WebhookHeld"]
    assert held[-1].endswith("timed out after 0.2s, timed out after 0.2s (no 2xx)")
    assert patches_sent(emulator)[-1].data["metadata"]["annotations"][ACTION] == "set"
    assert emulator.get(ISVC, "ml", "taxi")["spec"]["predictor"]["canaryTrafficPercent"] == 50


def test_the_rollback_webhook_rolls_back_and_post_rollout_hears_it(
    emulator: Emulator, kserve: FakeKServe, hooks: HookServer
) -> None:
    hooks.script["/rollback"] = [200]
    said: list[str] = []
    with pytest.raises(RolloutFailedError, match="the rollback webhook asked for it at 10%"):
        auto(emulator, kserve, gates(hooks, "rollback", "post-rollout"), said)
    annotations = patches_sent(emulator)[-1].data["metadata"]["annotations"]
    assert annotations[ACTION] == "rollback"
    (post,) = hooks.received["/post-rollout"]
    assert post["result"] == "rolled back"


def test_pause_before_promote_then_resume_or_rollback(
    emulator: Emulator, kserve: FakeKServe, hooks: HookServer, tmp_path: Path
) -> None:
    said: list[str] = []
    auto(emulator, kserve, gates(hooks, pause=True), said)
    paused = emulator.get(ISVC, "ml", "taxi")
    assert paused["metadata"]["annotations"][PHASE] == "awaiting-approval"
    assert paused["metadata"]["annotations"][ACTION] == "pause"
    assert paused["spec"]["predictor"]["canaryTrafficPercent"] == 50  # not promoted
    common = ["--namespace", "ml", "--kubeconfig", str(write_kubeconfig(emulator, tmp_path / "k"))]
    run(["status", "taxi", *common], out=said.append)
    assert said[-1].splitlines()[-1] == (
        "awaiting approval: `canary resume taxi` promotes, `canary rollback` aborts"
    )
    with kserve.watching():
        assert run(["resume", "taxi", "--actor", "bob", *common], out=said.append) == 0
    promoted = emulator.get(ISVC, "ml", "taxi")
    assert promoted["metadata"]["annotations"][ACTION] == "resume"
    assert PHASE not in promoted["metadata"]["annotations"]
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]
    assert run(["resume", "taxi", *common], out=said.append) == 2  # nothing awaits approval now


def test_rollback_aborts_a_paused_rollout(
    emulator: Emulator, kserve: FakeKServe, hooks: HookServer, tmp_path: Path
) -> None:
    auto(emulator, kserve, gates(hooks, pause=True), [])
    common = ["--namespace", "ml", "--kubeconfig", str(write_kubeconfig(emulator, tmp_path / "k"))]
    with kserve.watching():
        assert run(["rollback", "taxi", *common], out=lambda _: None) == 0
    aborted = emulator.get(ISVC, "ml", "taxi")["metadata"]["annotations"]
    assert aborted[ACTION] == "rollback" and PHASE not in aborted
    assert run(["resume", "taxi", *common], out=lambda _: None) == 2
