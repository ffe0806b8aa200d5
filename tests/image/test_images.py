"""The Docker images, built from the Dockerfile and run as production runs them (opt-in).

``make test-images`` (``--with-images``) builds, on ``PREDICTOR_TEST_PYTHON_IMAGE`` (the
Dockerfile's default Python base unless set) and ``PREDICTOR_TEST_MODELCAR_BASE``:

- the ``modelcar`` image of a published demo bundle: it holds the bundle under /models, and
  nothing of the predictor;
- the ``runtime`` image, run read-only as uid 1000 with the modelcar's /models mounted where
  KServe links it (/mnt/models), answering v1 and v2 on 127.0.0.1;
- the ``spark`` image, whose entrypoint's ``driver`` command runs ``score --engine spark`` on a
  local master, read-only but for /tmp and the data folder, and writes the files the local
  engine writes, byte for byte.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from predictor.demo import make_trips, publish_demo_bundles
from tests.helpers import REPO_ROOT, free_port, run_score, wait_until

pytestmark = [pytest.mark.image, pytest.mark.timeout(3600)]

PYTHON_IMAGE = os.environ.get("PREDICTOR_TEST_PYTHON_IMAGE") or "python:3.11.7-slim-bookworm"
MODELCAR_BASE = os.environ.get("PREDICTOR_TEST_MODELCAR_BASE") or "busybox:1.37.0"
DRIVER = "/opt/venv/lib/python3.11/site-packages/predictor/cli/spark_submit.py"


def docker(*args: str, timeout: float = 3000) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"docker {args[0]}: {done.stdout[-3000:]} {done.stderr[-3000:]}"
    return done


def build(target: str, tag: str, *args: str) -> str:
    docker(
        "build", "--network", "host", "--target", target, "--build-arg",
        f"PYTHON_IMAGE={PYTHON_IMAGE}", "--build-arg", f"MODELCAR_BASE={MODELCAR_BASE}",
        *args, "--tag", tag, str(REPO_ROOT),
    )  # fmt: skip
    return tag


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    registry = tmp_path_factory.mktemp("registry")
    publish_demo_bundles(registry, tmp_path_factory.mktemp("work"))
    return registry / "taxi" / "1.0.0"


@pytest.fixture(scope="module")
def modelcar(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The modelcar of ``bundle``, staged where `make docker-modelcar` stages (kept aside)."""
    staged = REPO_ROOT / "build" / "model"
    aside = tmp_path_factory.mktemp("aside") / "model"
    if staged.exists():
        shutil.move(str(staged), aside)
    shutil.copytree(bundle, staged)
    try:
        yield build("modelcar", "kserve-sklearn-predictor-modelcar:test")
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        if aside.exists():
            shutil.move(str(aside), staged)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def models_of(image: str, into: Path) -> Path:
    """The image's /models, copied out as KServe links it into the predictor's pod."""
    container = docker("create", image, "sh").stdout.strip()  # never started: any command
    try:
        docker("cp", f"{container}:/models", str(into))
    finally:
        docker("rm", container)
    into.chmod(0o755)
    return into


def test_the_modelcar_holds_the_bundle_and_nothing_else(
    modelcar: str, bundle: Path, tmp_path: Path
) -> None:
    models = models_of(modelcar, tmp_path / "models")
    assert sorted(p.name for p in models.iterdir()) == sorted(p.name for p in bundle.iterdir())
    assert (models / "model.json").read_bytes() == (bundle / "model.json").read_bytes()
    listing = docker("run", "--rm", "--entrypoint", "sh", modelcar, "-c", "ls /opt /usr/local")
    assert "venv" not in listing.stdout  # no predictor in it


def test_the_runtime_image_serves_the_modelcar_read_only_as_non_root(
    modelcar: str, tmp_path: Path
) -> None:
    image = build("runtime", "kserve-sklearn-predictor:test")
    user = docker("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
    assert user == "1000:1000"
    models = models_of(modelcar, tmp_path / "models")
    http, grpc = free_port(), free_port()
    container = docker(
        "run", "--detach", "--read-only", "--tmpfs", "/tmp", "--network", "host",
        "--user", "1000:1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--volume", f"{models}:/mnt/models:ro", image,
        "--model_name", "taxi", "--model_dir", "/mnt/models",
        "--http_port", str(http), "--grpc_port", str(grpc),
    ).stdout.strip()  # fmt: skip
    try:
        base = f"http://127.0.0.1:{http}"
        try:
            wait_until(lambda: answers(f"{base}/v2/models/taxi/ready"), timeout=120,
                       what="the container's model to be ready", every=0.5)  # fmt: skip
        except AssertionError:
            raise AssertionError(docker("logs", container).stderr[-3000:]) from None
        rows = make_trips(3, seed=5)[0].to_numpy().tolist()
        v1 = httpx.post(f"{base}/v1/models/taxi:predict", json={"instances": rows}, timeout=10)
        assert v1.status_code == 200, v1.text
        assert len(v1.json()["predictions"]) == 3
        assert v1.headers["x-model-version"] == "1.0.0"
        metadata = httpx.get(f"{base}/v2/models/taxi", timeout=10).json()
        assert metadata["versions"] == ["1.0.0"]
    finally:
        docker("rm", "--force", container)


def test_the_spark_image_runs_score_through_its_driver_command(
    bundle: Path, modelcar: str, tmp_path: Path
) -> None:
    del modelcar  # staged build/model: Docker's legacy builder builds the model stage first
    image = build("spark", "kserve-sklearn-predictor-spark:test")
    data = tmp_path / "data"
    data.mkdir()
    shutil.copytree(bundle, data / "bundle")
    features, _ = make_trips(50, seed=9)
    features.insert(0, "trip_id", range(50))
    column = features.columns[1]
    features[column] = features[column].astype(object)
    features.loc[3, column] = "n/a"
    features.to_csv(data / "trips.csv", index=False)
    data.chmod(0o777)
    docker(
        "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--user", "1000:1000",
        "--network", "host",  # Spark resolves its own hostname, as a pod's resolves
        "--volume", f"{data}:/data", image, "driver", "--master", "local[1]",
        f"local://{DRIVER}", "--model_uri", "/data/bundle/", "--input", "/data/trips.csv",
        "--output", "/data/out/", "--id_column", "trip_id", "--max_errors", "5",
    )  # fmt: skip
    local = run_score("--model_uri", str(data / "bundle"), "--input", str(data / "trips.csv"),
                      "--output", f"{tmp_path / 'local'}/", "--id_column", "trip_id",
                      "--max_errors", "5")  # fmt: skip
    assert local.returncode == 0, local.stderr
    for name in ("trips.csv", "trips.errors.csv"):  # the local engine's files, byte for byte
        assert (data / "out" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    scored = (data / "out" / "trips.csv").read_text().splitlines()
    assert scored[0].startswith('"trip_id",') and len(scored) == 1 + 49
    refused = (data / "out" / "trips.errors.csv").read_text().splitlines()
    assert len(refused) == 2 and refused[1].startswith('"3",')
