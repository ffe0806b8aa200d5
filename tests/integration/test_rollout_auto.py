"""``auto`` end to end: real predictors, a real Prometheus scraping them, the Kubernetes emulator.

Three predictor processes serve taxi 1.0.0 (stable), 1.1.0 (a healthy retrain) and 2.0.0 (a
model that drifted: it always answers "short"). Prometheus scrapes all three every second. A load
thread plays the gateway: it reads the traffic split from the InferenceService's status (written
by the KServe stand-in) and sends each request to the stable or the canary process accordingly.
``auto`` is shown to promote the healthy canary and to roll back the drifted one, from the numbers.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import joblib
import pytest
from sklearn.dummy import DummyClassifier

from predictor.demo import make_trips, publish_demo_bundles
from predictor.publishing.publish import BundleSpec, publish
from predictor.rollout.analysis import AnalysisConfig
from predictor.rollout.auto import run_auto
from predictor.rollout.controller import Rollout
from predictor.rollout.errors import RolloutFailedError
from predictor.rollout.kube import InferenceServices
from predictor.rollout.prometheus import Prometheus
from predictor.rollout.status import model_uris, traffic_split
from predictor.stores.files import sha256_file
from tests.helpers import RunningServer, ServerFactory
from tests.k8s_emulator import ISVC, Emulator, FakeKServe, knative_isvc
from tests.prometheus_server import running_prometheus
from tests.tcp_proxy import TCPProxy

pytestmark = pytest.mark.timeout(240)


@dataclass
class Fleet:
    registry: Path
    servers: dict[str, RunningServer]  # by model URI
    uris: dict[str, str]  # by version: folders whose names say nothing of the version
    digests: dict[str, str]  # by version: the model file's sha256, as pinned in the spec


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("registry")
    publish_demo_bundles(root, tmp_path_factory.mktemp("work"))
    features, labels = make_trips(200, seed=3)
    drifted = DummyClassifier(strategy="constant", constant="short").fit(features, labels)
    model_file = tmp_path_factory.mktemp("drift") / "model.joblib"
    joblib.dump(drifted, model_file)
    publish(
        BundleSpec(model_file=model_file, name="taxi", version="2.0.0", created_by="test"),
        str(root),
    )
    return root


@pytest.fixture
def fleet(server: ServerFactory, registry: Path, tmp_path: Path) -> Fleet:
    """Three predictors, each serving a bundle copied to a folder named for its role only.

    ``auto`` must learn the versions from what the pods report (``predictor_model_info``),
    matched by the digests the InferenceService pins, not from the URIs.
    """
    servers, uris, digests = {}, {}, {}
    for role, version in (("stable", "1.0.0"), ("retrained", "1.1.0"), ("drifted", "2.0.0")):
        folder = tmp_path / "served" / role
        shutil.copytree(registry / "taxi" / version, folder)
        uri = f"{folder}/"
        servers[uri] = server.start(uri, name="taxi")
        uris[version], digests[version] = uri, sha256_file(folder / "model.joblib")
    return Fleet(registry, servers, uris, digests)


@pytest.fixture
def prometheus(fleet: Fleet, tmp_path: Path) -> Iterator[str]:
    with running_prometheus([s.http_port for s in fleet.servers.values()], tmp_path) as url:
        yield url


class Gateway(threading.Thread):
    """Sends requests to stable or canary per the split that status shows."""

    def __init__(self, emulator: Emulator, fleet: Fleet) -> None:
        super().__init__(daemon=True)
        self.emulator, self.fleet = emulator, fleet
        self.stopping = threading.Event()
        self.sent = 0
        features, _ = make_trips(500, seed=11)
        self.rows = features.to_numpy().tolist()

    def run(self) -> None:
        chooser = random.Random(5)
        with httpx.Client(timeout=5) as http:
            while not self.stopping.is_set():
                isvc = self.emulator.get(ISVC, "ml", "taxi")
                stable_uri, canary_uri = model_uris(isvc)
                canary_share = (
                    sum(t.percent for t in traffic_split(isvc) if t.latest) if canary_uri else 0
                )
                if canary_share == 100:
                    stable_uri = canary_uri
                target = (
                    canary_uri
                    if canary_uri and chooser.random() * 100 < canary_share
                    else stable_uri
                )
                server = self.fleet.servers[str(target)]
                batch = chooser.sample(self.rows, 4)
                http.post(f"{server.url}/v1/models/taxi:predict", json={"instances": batch})
                self.sent += 1
                time.sleep(0.004)

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


def drive(
    fleet: Fleet, canary_version: str, on_say: Callable[[str], None] | None = None
) -> tuple[Rollout, Emulator, list[str]]:
    emulator = Emulator()
    document = knative_isvc(uri=fleet.uris["1.0.0"])
    document["spec"]["predictor"]["containers"][0]["env"].append(
        {"name": "PREDICTOR_MODEL_SHA256", "value": fleet.digests["1.0.0"]}
    )
    emulator.put(ISVC, "ml", "taxi", document)
    kserve = FakeKServe(emulator, "ml", "taxi")
    kserve.reconcile()
    said: list[str] = []

    def say(line: str) -> None:
        said.append(line)
        if on_say is not None:
            on_say(line)

    def sleep(seconds: float) -> None:
        kserve.reconcile()
        time.sleep(seconds)

    rollout = Rollout(
        InferenceServices(emulator.api_client()),
        "ml",
        "taxi",
        actor="test",
        out=say,
        sleep=sleep,
        poll_seconds=0.2,
    )
    rollout.start(
        model_uri=fleet.uris[canary_version], sha256=fleet.digests[canary_version], percent=20
    )
    return rollout, emulator, said


CONFIG = dict(
    min_requests=30,
    max_inconclusive=4,
    max_error_rate=0.01,
    max_p99_ratio=None,
    max_psi=0.2,
    window="8s",
)


@dataclass
class AutoRun:
    said: list[str]
    isvc: dict[str, Any]
    error: RolloutFailedError | None
    sent: int


def auto_with_traffic(
    fleet: Fleet,
    prometheus: str,
    canary_version: str,
    on_say: Callable[[str], None] | None = None,
) -> AutoRun:
    """Start a canary on ``canary_version``, send traffic as the split says, and run ``auto``."""
    rollout, emulator, said = drive(fleet, canary_version, on_say)
    gateway = Gateway(emulator, fleet)
    gateway.start()
    metrics = Prometheus(prometheus)
    error = None
    try:
        run_auto(
            rollout,
            steps=[20, 50, 100],
            interval_s=4,
            config=AnalysisConfig(prometheus=prometheus, **CONFIG),  # type: ignore[arg-type]
            metrics=metrics,
            step_timeout=30,
        )
    except RolloutFailedError as e:
        error = e
    finally:
        gateway.stop()
        metrics.close()
        rollout.isvcs.close()  # type: ignore[attr-defined]
    try:
        return AutoRun(said, emulator.get(ISVC, "ml", "taxi"), error, gateway.sent)
    finally:
        emulator.stop()


def test_auto_promotes_a_healthy_canary(fleet: Fleet, prometheus: str) -> None:
    run = auto_with_traffic(fleet, prometheus, "1.1.0")
    assert run.error is None, run.said
    verdicts = [line for line in run.said if ": step " in line]
    assert any(line.startswith("ml/taxi: step 20%: PASS") for line in verdicts), run.said
    assert any(line.startswith("ml/taxi: step 50%: PASS") for line in verdicts), run.said
    assert "ml/taxi: comparing 1.1.0 (canary) with 1.0.0" in run.said  # learned from the pods
    assert run.said[-1] == "ml/taxi: promoted 1.1.0"
    assert "canaryTrafficPercent" not in run.isvc["spec"]["predictor"]
    assert run.sent > 100


def test_auto_rolls_back_a_drifted_canary(fleet: Fleet, prometheus: str) -> None:
    run = auto_with_traffic(fleet, prometheus, "2.0.0")
    assert run.error is not None and "prediction distribution shifted: PSI" in str(run.error)
    assert run.isvc["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert any(": step 20%: FAIL" in line for line in run.said), run.said
    assert (
        "analysis failed at 20%"
        in run.isvc["metadata"]["annotations"]["rollout.kserve-sklearn-predictor.io/reason"]
    )


def cut_when_comparing(proxy: TCPProxy, restore_after_s: float | None) -> Callable[[str], None]:
    """Cut Prometheus off once ``auto`` knows the versions; bring it back later, or never."""

    def on_say(line: str) -> None:
        if "comparing" in line:
            proxy.cut()
            if restore_after_s is not None:
                threading.Timer(restore_after_s, proxy.restore).start()

    return on_say


def test_auto_holds_while_prometheus_is_cut_and_goes_on_when_it_is_back(
    fleet: Fleet, prometheus: str
) -> None:
    port = int(prometheus.rsplit(":", 1)[1])
    proxy = TCPProxy(("127.0.0.1", port))
    run = auto_with_traffic(
        fleet, f"http://{proxy.address}", "1.1.0", cut_when_comparing(proxy, restore_after_s=9)
    )
    proxy.close()
    assert run.error is None, run.said
    held = [line for line in run.said if "INCONCLUSIVE: metrics unavailable" in line]
    assert len(held) >= 2 and all(line.startswith("ml/taxi: step 20%") for line in held), run.said
    assert "Prometheus at http://" in held[0] and "did not answer" in held[0]
    assert "ml/taxi: holding at 20% and extending the analysis" in run.said
    assert any(line.startswith("ml/taxi: step 20%: PASS") for line in run.said), run.said
    assert run.said[-1] == "ml/taxi: promoted 1.1.0"


def test_auto_never_promotes_while_prometheus_stays_down(fleet: Fleet, prometheus: str) -> None:
    port = int(prometheus.rsplit(":", 1)[1])
    proxy = TCPProxy(("127.0.0.1", port))
    run = auto_with_traffic(
        fleet, f"http://{proxy.address}", "1.1.0", cut_when_comparing(proxy, restore_after_s=None)
    )
    proxy.close()
    assert run.error is not None and "stayed inconclusive at 20%" in str(run.error), run.said
    assert run.isvc["spec"]["predictor"]["canaryTrafficPercent"] == 20  # neither way
    held = [line for line in run.said if "INCONCLUSIVE: metrics unavailable" in line]
    assert len(held) == CONFIG["max_inconclusive"] + 1, run.said  # type: ignore[operator]
    assert not any("promoted" in line for line in run.said)
