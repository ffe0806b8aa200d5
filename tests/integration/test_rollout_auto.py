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
import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import GradientBoostingClassifier

from predictor.demo import make_trips, publish_demo_bundles, train_demo_model
from predictor.publishing.publish import BundleSpec, publish
from predictor.rollout.analysis import AnalysisConfig
from predictor.rollout.auto import run_auto
from predictor.rollout.controller import Rollout
from predictor.rollout.errors import RolloutFailedError
from predictor.rollout.kube import InferenceServices
from predictor.rollout.prometheus import Prometheus
from predictor.rollout.status import model_uris, traffic_split
from predictor.stores.files import sha256_file
from tests.estimators import SlowedClassifier
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
    slow_file = tmp_path_factory.mktemp("slow") / "model.joblib"
    joblib.dump(SlowedClassifier(train_demo_model(), delay_s=0.03), slow_file)
    publish(
        BundleSpec(model_file=slow_file, name="taxi", version="4.0.0", created_by="test"),
        str(root),
    )
    wrong_file = tmp_path_factory.mktemp("wrong") / "model.joblib"
    joblib.dump(wrong_labels_same_balance(), wrong_file)
    publish(
        BundleSpec(model_file=wrong_file, name="taxi", version="3.0.0", created_by="test"),
        str(root),
    )
    return root


def wrong_labels_same_balance() -> GradientBoostingClassifier:
    """A model whose labels are wrong but whose classes come in the stable model's shares.

    Each training trip gets a class by its rank on a random direction of the features, in the
    counts the stable model predicts: the shares of its answers match the stable's (PSI near
    0), the answers themselves mostly do not.
    """
    features, _ = make_trips(4000, seed=42)
    stable = train_demo_model()
    values = features.to_numpy(dtype=float)
    score = ((values - values.mean(0)) / values.std(0)) @ np.random.default_rng(0).normal(
        size=values.shape[1]
    )
    labels = np.empty(len(values), dtype=object)
    labels[np.argsort(score)] = np.sort(stable.predict(features))
    model = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=42)
    return model.fit(features, labels.astype(str))


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
    fleet: Fleet,
    canary_version: str,
    on_say: Callable[[str], None] | None = None,
    mirror_url: str | None = None,
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
        model_uri=fleet.uris[canary_version],
        sha256=fleet.digests[canary_version],
        percent=20,
        mirror_rate=1.0 if mirror_url else None,
        mirror_url=mirror_url,
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
    mirror_url: str | None = None,
    **config: Any,
) -> AutoRun:
    """Start a canary on ``canary_version``, send traffic as the split says, and run ``auto``."""
    rollout, emulator, said = drive(fleet, canary_version, on_say, mirror_url)
    gateway = Gateway(emulator, fleet)
    gateway.start()
    metrics = Prometheus(prometheus)
    error = None
    try:
        run_auto(
            rollout,
            steps=[20, 50, 100],
            interval_s=4,
            config=AnalysisConfig(prometheus=prometheus, **{**CONFIG, **config}),
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


def test_auto_rolls_back_a_canary_that_disagrees_with_the_stable_model(
    fleet: Fleet, registry: Path, server: ServerFactory, tmp_path: Path
) -> None:
    """Wrong answers in the right shares pass every check but agreement.

    The canary's pod mirrors its rows to the stable model (what ``start --mirror-to-stable``
    sets: ``PREDICTOR_SHADOW_URL``, here on a process started with it) and exports the
    agreement; Prometheus scrapes it with the others.
    """
    stable = fleet.servers[fleet.uris["1.0.0"]]
    mirror_url = f"{stable.url}/v1/models/taxi:predict"
    folder = tmp_path / "served" / "wrong"
    shutil.copytree(registry / "taxi" / "3.0.0", folder)
    uri = f"{folder}/"
    args = ["--shadow_url", mirror_url, "--shadow_sample_rate", "1"]
    fleet.servers[uri] = server.start(uri, name="taxi", args=args)
    fleet.uris["3.0.0"], fleet.digests["3.0.0"] = uri, sha256_file(folder / "model.joblib")
    with running_prometheus([s.http_port for s in fleet.servers.values()], tmp_path) as scraping:
        run = auto_with_traffic(
            fleet, scraping, "3.0.0", mirror_url=mirror_url,
            max_disagreement=0.1, min_agreement_rows=50,
        )  # fmt: skip
    assert run.error is not None, run.said
    assert "canary disagrees with the stable model on" in str(run.error), run.said
    failed = next(line for line in run.said if ": FAIL" in line)
    psi = float(failed.split("prediction PSI ")[1].split(";")[0])
    assert psi < 0.2  # the shares of its answers alone would have let it through
    assert "prediction distribution shifted" not in failed
    assert run.isvc["spec"]["predictor"]["canaryTrafficPercent"] == 0
    env = run.isvc["spec"]["predictor"]["containers"][0]["env"]
    assert {"name": "PREDICTOR_SHADOW_URL", "value": mirror_url} in env  # set by the start


def test_auto_rolls_back_a_canary_slower_than_the_stable_by_a_relative_threshold(
    fleet: Fleet, registry: Path, server: ServerFactory, tmp_path: Path
) -> None:
    """The same answers 30 ms later: inside a fixed p99 bound, outside 1.5x the stable's p99."""
    folder = tmp_path / "served" / "slow"
    shutil.copytree(registry / "taxi" / "4.0.0", folder)
    uri = f"{folder}/"
    fleet.servers[uri] = server.start(uri, name="taxi")
    fleet.uris["4.0.0"], fleet.digests["4.0.0"] = uri, sha256_file(folder / "model.joblib")
    with running_prometheus([s.http_port for s in fleet.servers.values()], tmp_path) as scraping:
        run = auto_with_traffic(
            fleet, scraping, "4.0.0", max_p99_seconds=1.0, max_p99_ratio=1.5,
            max_error_rate_increase=0.005,
        )  # fmt: skip
    assert run.error is not None, run.said
    failed = next(line for line in run.said if ": FAIL" in line)
    assert "x the stable's > 1.5x" in failed
    assert "canary p99" not in failed  # the fixed bound held: only the comparison caught it
    assert "prediction distribution shifted" not in failed  # the same answers
    assert run.isvc["spec"]["predictor"]["canaryTrafficPercent"] == 0


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
