"""Shared fixtures: small real models on disk, free ports, and helpers to run the server."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from hypothesis import settings
from sklearn.linear_model import LinearRegression, LogisticRegression

from predictor.demo import save_demo_model
from tests.gcs import GCSBucket, GCSEmulator
from tests.helpers import ServerFactory
from tests.stores import MLflowServer, S3Server

# A suite started in the background (`make test &`, a CI runner's shell) inherits SIGINT ignored,
# as POSIX shells set it for background jobs, and every process it starts would ignore Ctrl-C
# too: the tests that stop a run with SIGINT need it delivered as a terminal delivers it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Fuzzing budget: 150 examples per property in every run; `--hypothesis-profile long` for a long run.
settings.register_profile("default", max_examples=150)
settings.register_profile("long", max_examples=5000)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--with-e2e", action="store_true", default=False, help="run the minikube e2e suite"
    )
    parser.addoption(
        "--with-images",
        action="store_true",
        default=False,
        help="build the Docker images and run them (needs a Docker engine; make test-images)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    opted = {"e2e": config.getoption("--with-e2e"), "image": config.getoption("--with-images")}
    reasons = {
        "e2e": "e2e: needs minikube with KServe; pass --with-e2e",
        "image": "image: builds and runs the Docker images; pass --with-images (make test-images)",
    }
    for item in items:
        for marker, wanted in opted.items():
            if marker in item.keywords and not wanted:
                item.add_marker(pytest.mark.skip(reason=reasons[marker]))


_early: dict[str, MLflowServer] = {}


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the MLflow servers now if a selected test needs them: a first start is slow."""
    import tempfile

    for fixture, auth in (("mlflow_server", False), ("mlflow_auth_server", True)):
        if any(fixture in getattr(item, "fixturenames", ()) for item in session.items):
            folder = Path(tempfile.mkdtemp(prefix="mlflow-tests-"))
            _early[fixture] = MLflowServer(folder, auth=auth)


def pytest_sessionfinish(session: pytest.Session) -> None:
    for server in _early.values():
        server.stop()


def _early_server(fixture: str) -> MLflowServer:
    server = _early.get(fixture)
    assert server is not None, "started by pytest_collection_finish"
    server.wait_ready("/health", timeout=180)
    return server


@pytest.fixture(scope="session")
def mlflow_server() -> MLflowServer:
    """One MLflow tracking server (sqlite, local artifacts) for the session."""
    return _early_server("mlflow_server")


@pytest.fixture(scope="session")
def mlflow_auth_server() -> MLflowServer:
    """One MLflow tracking server with basic auth for the session."""
    return _early_server("mlflow_auth_server")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One moto S3 API server for the session (buckets are named per test)."""
    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    try:
        server.wait_ready("/moto-api/", timeout=60)
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    """boto3 reaching the S3 server (its variables set for the test), and a new empty bucket."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    client: Any = s3_server.client()
    bucket = f"bucket-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo taxi classifier (named features, string labels) in its own folder."""
    folder = tmp_path_factory.mktemp("demo")
    save_demo_model(folder)
    return folder


@pytest.fixture(scope="session")
def regressor_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LinearRegression on 4 unnamed features."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = x @ np.array([1.0, -2.0, 0.5, 3.0]) + 1.0
    path = tmp_path_factory.mktemp("regressor") / "model.pkl"
    joblib.dump(LinearRegression().fit(x, y), path)
    return path


@pytest.fixture(scope="session")
def int_classifier_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LogisticRegression on 4 unnamed features with integer classes 0, 1, 2."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    y = np.digitize(x[:, 0] + x[:, 1], [-0.5, 0.5])
    path = tmp_path_factory.mktemp("intclf") / "model.joblib"
    joblib.dump(LogisticRegression().fit(x, y), path)
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start ``python -m predictor`` processes on free ports; all are stopped at teardown."""
    factory = ServerFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GCSEmulator]:
    """One fake-gcs-server for the session (buckets are named per test)."""
    emulator = GCSEmulator(tmp_path_factory.mktemp("gcs") / "emulator.log")
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def gcs(
    gcs_emulator: GCSEmulator, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> GCSBucket:
    """A fresh bucket in the emulator, with STORAGE_EMULATOR_HOST pointing at it."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    return GCSBucket.create(gcs_emulator.url, f"b-{uuid.uuid4().hex[:12]}")
