"""The rollout tooling against a Kubernetes API emulator, through the real ``kubernetes`` client.

Covers: the exact patches sent (merge-patch content type, resourceVersion, field manager, audit
annotations), steps judged from status written by a KServe stand-in, idempotent promote and
rollback (no request sent), a conflicting writer (re-read and re-decide), Events, Standard mode
with and without KServe 0.20's ``spec.canary``, a canary that never becomes ready, ``--dry-run``,
and the CLI's exit codes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from predictor.rollout.audit import ACTION, ACTOR, FROM_VERSION, REASON, STABLE_URI, TO_VERSION
from predictor.rollout.cli import run
from predictor.rollout.controller import Rollout
from predictor.rollout.errors import CanaryImpossibleError, StepTimeoutError
from predictor.rollout.kube import InferenceServices
from tests.k8s_emulator import (
    CRD,
    ISVC,
    STYLES,
    Emulator,
    FakeKServe,
    crd,
    knative_isvc,
    standard_isvc,
    with_style,
    write_kubeconfig,
)

NEW = "gs://models/registry/taxi/1.1.0/"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator()
    try:
        yield emu
    finally:
        for client in opened:
            client.close()
        opened.clear()
        emu.stop()


opened: list[InferenceServices] = []


@pytest.fixture
def kserve(emulator: Emulator) -> FakeKServe:
    emulator.put(ISVC, "ml", "taxi", knative_isvc())
    emulator.put(CRD, None, "inferenceservices.serving.kserve.io", crd(with_canary=True))
    fake = FakeKServe(emulator, "ml", "taxi")
    fake.reconcile()
    return fake


def rollout(emulator: Emulator, kserve: FakeKServe | None = None, **kwargs: Any) -> Rollout:
    clock = itertools.count()

    def sleep(_: float) -> None:
        if kserve is not None:
            kserve.reconcile()

    isvcs = InferenceServices(emulator.api_client())
    opened.append(isvcs)
    return Rollout(
        isvcs,
        "ml",
        "taxi",
        actor="alice",
        out=lambda _: None,
        sleep=sleep,
        clock=lambda: float(next(clock)),
        poll_seconds=1,
        **kwargs,
    )


class Sent:
    """A PATCH request as the client sent it."""

    def __init__(self, emulator: Emulator, request: Any) -> None:
        self.headers = request.headers
        self.params = request.params
        self.data = emulator.sent_body(request)


def patches_sent(emulator: Emulator) -> list[Sent]:
    return [
        Sent(emulator, r) for r in emulator.requests("PATCH") if "inferenceservices" in str(r.url)
    ]


def test_start_sends_one_merge_patch_with_model_percent_and_audit(
    emulator: Emulator, kserve: FakeKServe
) -> None:
    before = emulator.get(ISVC, "ml", "taxi")["metadata"]["resourceVersion"]
    rollout(emulator, kserve).start(model_uri=NEW, percent=10)
    (request,) = patches_sent(emulator)
    assert request.headers["Content-Type"] == "application/merge-patch+json"
    assert request.params["fieldManager"] == "canary-rollout"
    body = request.data
    assert body["metadata"]["resourceVersion"] == before
    annotations = body["metadata"]["annotations"]
    assert (annotations[ACTION], annotations[ACTOR]) == ("start", "alice")
    assert (annotations[FROM_VERSION], annotations[TO_VERSION]) == ("1.0.0", "1.1.0")
    assert annotations[STABLE_URI] == "gs://models/registry/taxi/1.0.0/"
    assert body["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert body["spec"]["predictor"]["containers"][0]["env"][0] == {
        "name": "PREDICTOR_MODEL_URI",
        "value": NEW,
    }
    events = [r.data for r in emulator.requests("POST") if "events" in str(r.url)]
    assert [e["reason"] for e in events] == ["CanaryStarted"]
    assert events[0]["involvedObject"]["name"] == "taxi"


def test_steps_are_judged_from_status(emulator: Emulator, kserve: FakeKServe) -> None:
    driver = rollout(emulator, kserve)
    driver.start(model_uri=NEW, percent=10)
    isvc = driver.wait_for(10, timeout=30)
    assert [
        (t["percent"], t["latestRevision"])
        for t in isvc["status"]["components"]["predictor"]["traffic"]
    ] == [
        (90, False),
        (10, True),
    ]
    driver.set_percent(50)
    driver.wait_for(50, timeout=30)
    table = driver.status_table()
    assert "ml/taxi (knative mode): ready=True, canary requested=50" in table
    assert "taxi-predictor-00002  50%      yes     gs://models/registry/taxi/1.1.0/  1.1.0" in table
    driver.promote()
    assert patches_sent(emulator)[-1].data["spec"] == {"predictor": {"canaryTrafficPercent": None}}
    promoted = driver.wait_for(None, timeout=30)
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]


def test_promote_and_rollback_twice_change_nothing_the_second_time(
    emulator: Emulator, kserve: FakeKServe
) -> None:
    said: list[str] = []
    driver = rollout(emulator, kserve)
    driver.out = said.append
    driver.start(model_uri=NEW, percent=10)
    driver.rollback()
    assert patches_sent(emulator)[-1].data["spec"] == {"predictor": {"canaryTrafficPercent": 0}}
    count = len(patches_sent(emulator))
    driver.rollback()
    assert len(patches_sent(emulator)) == count
    assert said[-1] == "ml/taxi: nothing to roll back: no canary takes traffic"
    driver.wait_for(0, timeout=30)
    driver.promote()  # a rolled-back canary can still be promoted deliberately
    driver.promote()
    assert said[-1] == "ml/taxi: nothing to promote: no canary in progress"
    assert len(patches_sent(emulator)) == count + 1


def test_a_conflicting_writer_makes_it_re_read_and_re_decide(
    emulator: Emulator, kserve: FakeKServe
) -> None:
    driver = rollout(emulator, kserve)
    driver.start(model_uri=NEW, percent=10)
    reads = 0
    real_get = driver.isvcs.get

    def racing_get(namespace: str, name: str) -> dict[str, Any]:
        nonlocal reads
        reads += 1
        found = real_get(namespace, name)
        if reads == 1:  # someone else writes right after our first read
            emulator.patch(ISVC, "ml", "taxi", {"metadata": {"labels": {"touched": "yes"}}})
        return found

    driver.isvcs.get = racing_get  # type: ignore[method-assign]
    driver.set_percent(25)
    sent = patches_sent(emulator)[-2:]
    assert [p.data["spec"]["predictor"]["canaryTrafficPercent"] for p in sent] == [25, 25]
    assert (
        sent[0].data["metadata"]["resourceVersion"] != sent[1].data["metadata"]["resourceVersion"]
    )
    stored = emulator.get(ISVC, "ml", "taxi")
    assert stored["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert stored["metadata"]["labels"] == {"touched": "yes"}


def test_dry_run_prints_the_patch_and_sends_nothing(emulator: Emulator, kserve: FakeKServe) -> None:
    said: list[str] = []
    driver = rollout(emulator, kserve, dry_run=True)
    driver.out = said.append
    driver.start(model_uri=NEW, percent=10)
    assert patches_sent(emulator) == []
    assert '"canaryTrafficPercent": 10' in said[0]


def test_a_canary_that_never_becomes_ready_is_reported(
    emulator: Emulator, kserve: FakeKServe
) -> None:
    driver = rollout(emulator, kserve)
    driver.start(model_uri="gs://models/registry/taxi/9.9.9-broken/", percent=10)
    with pytest.raises(StepTimeoutError, match="model failed its acceptance checks"):
        driver.wait_for(10, timeout=30)


def test_standard_mode_without_spec_canary_refuses_and_changes_nothing(emulator: Emulator) -> None:
    emulator.put(ISVC, "ml", "taxi", standard_isvc())
    emulator.put(CRD, None, "inferenceservices.serving.kserve.io", crd(with_canary=False))
    with pytest.raises(CanaryImpossibleError, match="silently ignored; nothing was changed"):
        rollout(emulator).start(model_uri=NEW, percent=10)
    assert patches_sent(emulator) == []


def test_standard_mode_canary_lifecycle(emulator: Emulator) -> None:
    emulator.put(ISVC, "ml", "taxi", standard_isvc())
    emulator.put(CRD, None, "inferenceservices.serving.kserve.io", crd(with_canary=True))
    kserve = FakeKServe(emulator, "ml", "taxi")
    kserve.reconcile()
    driver = rollout(emulator, kserve)
    driver.start(model_uri=NEW, percent=10)
    driver.wait_for(10, timeout=30)
    driver.set_percent(50)
    assert patches_sent(emulator)[-1].data["spec"]["canary"][0]["trafficPercent"] == 50
    driver.wait_for(50, timeout=30)
    driver.promote()
    promoted = driver.wait_for(None, timeout=30)
    assert "canary" not in promoted["spec"]
    assert promoted["spec"]["predictor"]["name"] == "taxi-1-1-0"
    assert promoted["spec"]["predictor"]["containers"][0]["env"][0]["value"] == NEW


def test_cli_exit_codes(emulator: Emulator, kserve: FakeKServe, tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(emulator, tmp_path / "kubeconfig")
    said: list[str] = []
    common = ["--namespace", "ml", "--kubeconfig", str(kubeconfig)]
    with kserve.watching():
        started = run(
            ["start", "taxi", "--model-uri", NEW, "--percent", "10", *common], out=said.append
        )
        assert started == 0
        assert said[:2] == [
            f"ml/taxi: requested: canary {NEW} at 10% of traffic",
            "ml/taxi: status shows taxi-predictor-00001 90%, taxi-predictor-00002 10%",
        ]
        again = run(
            ["start", "taxi", "--model-uri", NEW, "--percent", "10", *common], out=said.append
        )
        assert again == 2
        assert run(["set", "taxi", "--percent", "150", *common], out=said.append) == 2
        assert run(["status", "nope", *common], out=said.append) == 2
        assert run(["status", "taxi", *common], out=said.append) == 0
        assert said[-1].startswith("ml/taxi (knative mode): ready=True, canary requested=10")
        assert run(["rollback", "taxi", *common], out=said.append) == 0
    assert said[-2:] == [
        "ml/taxi: requested: all traffic back to stable (rolled back by hand)",
        "ml/taxi: status shows taxi-predictor-00001 100%",
    ]
    assert (
        emulator.get(ISVC, "ml", "taxi")["metadata"]["annotations"][REASON] == "rolled back by hand"
    )


def test_cli_start_fails_with_the_controllers_reason_when_the_canary_never_becomes_ready(
    emulator: Emulator, kserve: FakeKServe, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = write_kubeconfig(emulator, tmp_path / "kubeconfig")
    said: list[str] = []
    broken = "gs://models/registry/taxi/9.9.9-broken/"
    argv = ["start", "taxi", "--model-uri", broken, "--percent", "10"]
    with kserve.watching():
        status = run([*argv, "--namespace", "ml", "--kubeconfig", str(kubeconfig)], out=said.append)
    assert status == 1
    assert said == [f"ml/taxi: requested: canary {broken} at 10% of traffic"]
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "canary start: revision taxi-predictor-00002 is not ready: RevisionFailed model failed "
        "its acceptance checks; the spec still asks for it; `canary rollback taxi` withdraws "
        "the request"
    )


def test_cli_no_wait_says_the_split_is_only_requested(
    emulator: Emulator, kserve: FakeKServe, tmp_path: Path
) -> None:
    kubeconfig = write_kubeconfig(emulator, tmp_path / "kubeconfig")
    said: list[str] = []
    argv = ["start", "taxi", "--model-uri", NEW, "--percent", "10", "--no-wait"]
    status = run([*argv, "--namespace", "ml", "--kubeconfig", str(kubeconfig)], out=said.append)
    assert status == 0
    assert said == [
        f"ml/taxi: requested: canary {NEW} at 10% of traffic",
        "ml/taxi: not waited for (--no-wait); `canary status taxi` shows when the split is taken",
    ]
    assert not any("takes" in line for line in said)


def test_url_prints_the_address_and_host_that_predictor_call_takes(
    emulator: Emulator, kserve: FakeKServe, tmp_path: Path
) -> None:
    kubeconfig = write_kubeconfig(emulator, tmp_path / "kubeconfig")
    said: list[str] = []
    assert (
        run(["url", "taxi", "--namespace", "ml", "--kubeconfig", str(kubeconfig)], out=said.append)
        == 0
    )
    assert said == [
        "url:  http://taxi.ml.example.com\n"
        "host: taxi.ml.example.com\n"
        "call: python -m predictor call http://$INGRESS --host taxi.ml.example.com --model taxi "
        "--instances '[[...]]'"
    ]


def test_auto_rolls_back_a_canary_that_never_becomes_ready(
    emulator: Emulator, kserve: FakeKServe
) -> None:
    from predictor.rollout.analysis import AnalysisConfig
    from predictor.rollout.auto import run_auto
    from predictor.rollout.errors import RolloutFailedError

    class NoMetrics:
        def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
            raise AssertionError("no analysis for a canary that never became ready")

    driver = rollout(emulator, kserve)
    driver.start(model_uri="gs://models/registry/taxi/9.9.9-broken/", percent=10)
    with pytest.raises(
        RolloutFailedError, match="rolled back: revision taxi-predictor-00002 is not ready"
    ):
        run_auto(
            driver,
            steps=[10, 50, 100],
            interval_s=1,
            config=AnalysisConfig(prometheus="http://127.0.0.1:9"),
            metrics=NoMetrics(),
            step_timeout=30,
        )
    last = patches_sent(emulator)[-1].data
    assert last["spec"] == {"predictor": {"canaryTrafficPercent": 0}}
    assert "model failed its acceptance checks" in last["metadata"]["annotations"][REASON]


def model_of(predictor: dict[str, Any], style: str) -> str:
    if style == "storage-uri":
        assert "containers" not in predictor
        return str(predictor["model"]["storageUri"])
    (container,) = predictor["containers"]
    names = [e["name"] for e in container["env"]]
    wanted = "STORAGE_URI" if style == "container-storage-uri" else "PREDICTOR_MODEL_URI"
    other = "PREDICTOR_MODEL_URI" if wanted == "STORAGE_URI" else "STORAGE_URI"
    assert other not in names  # replaced in place; no second reference beside it
    return next(str(e["value"]) for e in container["env"] if e["name"] == wanted)


@pytest.mark.parametrize("mode", ["knative", "standard"])
@pytest.mark.parametrize("style", STYLES)
def test_every_style_runs_start_set_status_promote_and_rollback(
    emulator: Emulator, mode: str, style: str
) -> None:
    document = knative_isvc() if mode == "knative" else standard_isvc()
    emulator.put(ISVC, "ml", "taxi", with_style(document, style))
    emulator.put(CRD, None, "inferenceservices.serving.kserve.io", crd(with_canary=True))
    kserve = FakeKServe(emulator, "ml", "taxi")
    kserve.reconcile()
    driver = rollout(emulator, kserve)
    driver.start(model_uri=NEW, percent=10)
    sent = patches_sent(emulator)[-1].data["spec"]
    changed = sent["predictor"] if mode == "knative" else sent["canary"][0]["predictor"]
    assert model_of(changed, style) == NEW
    if mode == "standard" and style == "storage-uri":
        assert changed["model"]["name"] == "kserve-container"  # KServe's CRD requires it there
    driver.wait_for(10, timeout=30)
    driver.set_percent(50)
    driver.wait_for(50, timeout=30)
    table = driver.status_table()
    assert "gs://models/registry/taxi/1.0.0/" in table and NEW in table
    driver.promote()
    promoted = driver.wait_for(None, timeout=30)
    assert model_of(promoted["spec"]["predictor"], style) == NEW
    newest = "gs://models/registry/taxi/1.2.0/"
    driver.start(model_uri=newest, percent=10)
    driver.wait_for(10, timeout=30)
    driver.rollback()
    back = driver.wait_for(0, timeout=30)
    stable = back["spec"]["predictor"]
    if mode == "standard":
        assert "canary" not in back["spec"] and model_of(stable, style) == NEW


def test_an_isvc_that_names_no_model_is_refused_saying_where_it_looked(
    emulator: Emulator,
) -> None:
    document = knative_isvc()
    document["spec"]["predictor"]["containers"][0]["env"] = []
    emulator.put(ISVC, "ml", "taxi", document)
    with pytest.raises(CanaryImpossibleError) as refused:
        rollout(emulator).start(model_uri=NEW, percent=10)
    assert str(refused.value) == (
        "the predictor names no model; looked in spec.predictor.model.storageUri, "
        "model.env PREDICTOR_MODEL_URI, or a container's STORAGE_URI or PREDICTOR_MODEL_URI"
    )
    assert patches_sent(emulator) == []


class HealthyPods:
    """Prometheus' answers for two healthy versions: what their pods report, recorded.

    Versions are reported with the digests the service pins, so ``auto`` learns them from here;
    the query text is checked for the version it selects.
    """

    def __init__(self, digests: dict[str, str]) -> None:
        self.digests = digests
        self.asked: list[str] = []

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        self.asked.append(promql)
        if "predictor_model_info" in promql:
            return [({"version": v, "sha256": s}, 1.0) for v, s in self.digests.items()]
        if "histogram_quantile" in promql:
            return [({}, 0.004)]
        if "status=~" in promql:
            return [({}, 0.0)]
        if "predictor_requests_total" in promql:
            return [({}, 600.0)]
        if "predictor_predictions_total" in promql:
            return [({"class": "long"}, 300.0), ({"class": "short"}, 300.0)]
        return []


@pytest.mark.parametrize("mode", ["knative", "standard"])
@pytest.mark.parametrize("style", STYLES)
def test_auto_promotes_in_every_style_with_versions_from_the_pods(
    emulator: Emulator, mode: str, style: str
) -> None:
    from predictor.rollout.analysis import AnalysisConfig
    from predictor.rollout.auto import run_auto

    old, new = "a" * 64, "b" * 64
    document = with_style(knative_isvc() if mode == "knative" else standard_isvc(), style)
    pins = (
        document["spec"]["predictor"].get("model") or document["spec"]["predictor"]["containers"][0]
    )
    pins.setdefault("env", []).append({"name": "PREDICTOR_MODEL_SHA256", "value": old})
    emulator.put(ISVC, "ml", "taxi", document)
    emulator.put(CRD, None, "inferenceservices.serving.kserve.io", crd(with_canary=True))
    kserve = FakeKServe(emulator, "ml", "taxi")
    kserve.reconcile()
    said: list[str] = []
    driver = rollout(emulator, kserve)
    driver.out = said.append
    driver.start(model_uri="gs://models/served/candidate/", sha256=new, percent=10)
    pods = HealthyPods({"1.0.0": old, "1.1.0": new})
    run_auto(
        driver,
        steps=[10, 50, 100],
        interval_s=1,
        config=AnalysisConfig(prometheus="http://127.0.0.1:9", min_requests=10),
        metrics=pods,
        step_timeout=30,
    )
    assert "ml/taxi: comparing 1.1.0 (canary) with 1.0.0" in said
    assert said[-1] == "ml/taxi: promoted 1.1.0"
    assert any('version="1.1.0"' in q for q in pods.asked)
    promoted = emulator.get(ISVC, "ml", "taxi")["spec"]["predictor"]
    assert model_of(promoted, style) == "gs://models/served/candidate/"


def pinned_service(emulator: Emulator, sha256: str) -> FakeKServe:
    """A Knative InferenceService whose model is pinned by ``sha256``, and KServe's stand-in."""
    document = knative_isvc()
    document["spec"]["predictor"]["containers"][0]["env"].append(
        {"name": "PREDICTOR_MODEL_SHA256", "value": sha256}
    )
    emulator.put(ISVC, "ml", "taxi", document)
    kserve = FakeKServe(emulator, "ml", "taxi")
    kserve.reconcile()
    return kserve


def test_auto_rides_out_5xx_and_conflicts_from_the_api(emulator: Emulator) -> None:
    from predictor.rollout.analysis import AnalysisConfig
    from predictor.rollout.auto import run_auto

    old, new = "a" * 64, "b" * 64
    kserve = pinned_service(emulator, old)
    said: list[str] = []
    driver = rollout(emulator, kserve)
    driver.out = said.append
    driver.start(model_uri=NEW, sha256=new, percent=10)
    before = len(patches_sent(emulator))
    emulator.handler.faults.extend([503, 409, 500, 502, 409, 429])  # the next six writes fail

    run_auto(
        driver,
        steps=[10, 50, 100],
        interval_s=0.01,
        config=AnalysisConfig(prometheus="http://127.0.0.1:9", min_requests=10),
        metrics=HealthyPods({"1.0.0": old, "1.1.0": new}),
        step_timeout=30,
    )
    assert said[-1] == "ml/taxi: promoted 1.1.0"
    assert emulator.handler.faults == []
    writes = emulator.requests("PATCH")[before:]
    applied = [r for r in writes if r.id in emulator.handler.sent]
    assert len(writes) == len(applied) + 6
    assert [
        emulator.sent_body(r)["spec"]["predictor"].get("canaryTrafficPercent") for r in applied
    ] == [50, None]
    assert "canaryTrafficPercent" not in emulator.get(ISVC, "ml", "taxi")["spec"]["predictor"]


def test_a_dropped_api_connection_leaves_a_state_status_describes_and_auto_resumes(
    emulator: Emulator,
) -> None:
    from kubernetes import client

    from predictor.rollout.analysis import AnalysisConfig
    from predictor.rollout.auto import run_auto
    from predictor.rollout.errors import RolloutError
    from tests.tcp_proxy import TCPProxy

    old, new = "a" * 64, "b" * 64
    kserve = pinned_service(emulator, old)
    proxy = TCPProxy(("127.0.0.1", int(emulator.url.rsplit(":", 1)[1])))
    configuration = client.Configuration()
    configuration.host = f"http://{proxy.address}"
    through_proxy = InferenceServices(client.ApiClient(configuration), retry_deadline_s=2)
    opened.append(through_proxy)
    said: list[str] = []
    cut: list[str] = []

    def say(line: str) -> None:
        said.append(line)
        if ": step 10%: PASS" in line and not cut:
            cut.append(line)
            proxy.cut()  # the connection drops before the step to 50% is sent

    def sleep(_: float) -> None:
        kserve.reconcile()

    driver = Rollout(
        through_proxy, "ml", "taxi", actor="alice", out=say, sleep=sleep, poll_seconds=0.01
    )
    driver.start(model_uri=NEW, sha256=new, percent=10)
    pods = HealthyPods({"1.0.0": old, "1.1.0": new})
    config = AnalysisConfig(prometheus="http://127.0.0.1:9", min_requests=10)
    with pytest.raises(RolloutError, match="the Kubernetes API still failing after retrying") as e:
        run_auto(driver, steps=[10, 50, 100], interval_s=0.01, config=config, metrics=pods,
                 step_timeout=30)  # fmt: skip
    assert "`status` shows where the rollout stands, and `auto` resumes from there" in str(e.value)
    assert e.value.exit_code == 2

    direct = rollout(emulator, kserve)
    table = direct.status_table()
    assert emulator.get(ISVC, "ml", "taxi")["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert "canary requested=10" in table and NEW in table, table

    proxy.restore()
    run_auto(driver, steps=[10, 50, 100], interval_s=0.01, config=config, metrics=pods,
             step_timeout=30)  # fmt: skip
    assert said[-1] == "ml/taxi: promoted 1.1.0"
    assert "canaryTrafficPercent" not in emulator.get(ISVC, "ml", "taxi")["spec"]["predictor"]
    proxy.close()
