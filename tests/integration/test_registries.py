"""Models from MLflow's registry (``models:/``) and S3 (``s3://``), against real servers.

A real ``mlflow server`` (basic auth, sqlite, local artifacts) and moto's S3 API server, both on
127.0.0.1, reached through the real clients (MLflow's, boto3). The predictor runs as a process.
Covers: ``models:/NAME/VERSION`` and ``models:/NAME@ALIAS`` served and reported (version, run id,
alias), MLflow's three formats, each failure as one line with exit 2, publishing to the
registry and serving it back; ``s3://`` objects and prefixes, the digest pin, each S3 failure,
publishing to S3 (immutable, and completed when interrupted).
"""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest

from predictor.errors import PredictorError, StorageAuthError, StorageError, StorageNotFoundError
from predictor.loading.gate import load_accepted
from predictor.settings import Settings
from predictor.stores.files import sha256_file
from tests.helpers import ServerFactory, free_port
from tests.stores import MLFLOW_ADMIN, MLflowServer, S3Server

ROWS = [[0.1, -0.3, 1.2, 0.5], [-1.0, 0.4, 0.0, 2.0]]


@pytest.fixture(autouse=True)
def mlflow_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the registry adapter sets at start-up, undone after each test here."""
    for key, value in (
        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0"),
        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "10"),
        ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"),
    ):
        monkeypatch.setenv(key, value)


@pytest.fixture
def registry(mlflow_server: MLflowServer, monkeypatch: pytest.MonkeyPatch) -> MLflowServer:
    for key, value in mlflow_server.env().items():
        monkeypatch.setenv(key, value)
    return mlflow_server


@pytest.fixture(scope="module")
def logged(mlflow_server: MLflowServer, int_classifier_file: Path) -> Iterator[dict[str, Any]]:
    """One registered model with a version per MLflow format, and alias champion on pickle."""
    import mlflow
    import mlflow.sklearn

    name = f"taxi-{uuid.uuid4().hex[:8]}"
    estimator = joblib.load(int_classifier_file)
    runs = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
        mlflow.set_experiment(name)
        for serialization in ("skops", "pickle", "cloudpickle"):
            # How a training script logs its model; MLflow warns about its own type-hint and
            # pickle choices there, which are not under test.
            with mlflow.start_run() as run, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mlflow.sklearn.log_model(
                    estimator,
                    name="model",
                    serialization_format=serialization,
                    registered_model_name=name,
                    pip_requirements=["scikit-learn"],
                )
                runs[serialization] = run.info.run_id
        mlflow.MlflowClient().set_registered_model_alias(name, "champion", "2")
    yield {"name": name, "estimator": estimator, "runs": runs}


def infer_v2(url: str, name: str) -> dict[str, Any]:
    body = {
        "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": sum(ROWS, [])}]
    }
    response = httpx.post(f"{url}/v2/models/{name}/infer", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_registry_version_and_an_alias_are_served_and_reported(
    server: ServerFactory, registry: MLflowServer, logged: dict[str, Any]
) -> None:
    name, expected = logged["name"], logged["estimator"].predict(np.array(ROWS)).tolist()
    env = registry.env()
    for uri, alias in ((f"models:/{name}/2", None), (f"models:/{name}@champion", "champion")):
        running = server.start(uri, name="taxi", env=env, timeout=60)
        answer = infer_v2(running.url, "taxi")
        assert answer["model_version"] == "2"
        assert answer["outputs"][0]["data"] == expected
        meta = httpx.get(f"{running.url}/v2/models/taxi").json()
        assert meta["versions"] == ["2"]
        parameters = meta["parameters"]
        assert parameters["registry_model"] == name
        assert parameters["registry_version"] == "2"
        assert parameters["mlflow_run_id"] == logged["runs"]["pickle"]
        assert parameters["mlflow_format"] == "pickle"
        assert parameters.get("registry_alias") == alias
        home = httpx.get(f"{running.url}/", headers={"accept": "application/json"}).json()
        assert home["models"][0]["version"] == "2"
        metrics = httpx.get(f"{running.url}/metrics").text
        assert 'version="2"' in metrics
        if alias is not None:
            assert f"models:/{name}@champion resolved to version 2" in running.log()
        running.stop()


@pytest.mark.parametrize("version", ["1", "2", "3"])
def test_each_mlflow_format_loads_and_answers_like_scikit_learn(
    registry: MLflowServer, logged: dict[str, Any], tmp_path: Path, version: str
) -> None:
    loaded = load_accepted(
        Settings(model_uri=f"models:/{logged['name']}/{version}", download_dir=tmp_path)
    )
    assert loaded.mlflow_model is not None
    assert (
        loaded.mlflow_model.serialization_format
        == ["skops", "pickle", "cloudpickle"][int(version) - 1]
    )
    assert loaded.estimator.predict(np.array(ROWS)).tolist() == (
        logged["estimator"].predict(np.array(ROWS)).tolist()
    )
    assert loaded.version == version


def refusal(uri: str, tmp_path: Path) -> PredictorError:
    """What loading ``uri`` raises, as the server's start-up would meet it."""
    with pytest.raises(PredictorError) as caught:
        load_accepted(
            Settings(model_uri=uri, download_dir=tmp_path / "dl", store_deadline_seconds=2)
        )
    return caught.value


def assert_refused_in_one_line(server: ServerFactory, uri: str, said: str, **env: str) -> None:
    refused = server.run_to_exit(uri, env=env, args=["--store_deadline_seconds", "2"])
    log = refused.log()
    assert refused.process.returncode == 2, log
    assert [line for line in log.splitlines() if line.startswith("predictor: ")] == [
        f"predictor: cannot serve model 'model': {uri}: {said}"
    ]
    assert "Traceback" not in log


def test_each_registry_failure_is_one_classified_line(
    server: ServerFactory,
    registry: MLflowServer,
    logged: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = logged["name"]
    cases = [
        (f"models:/nope-{name}/1", StorageNotFoundError, f"no registered model 'nope-{name}'"),
        (f"models:/{name}/9", StorageNotFoundError, f"model '{name}' has no version 9"),
        (
            f"models:/{name}@nope",
            StorageNotFoundError,
            f"model '{name}' has no alias 'nope' (aliases: champion)",
        ),
    ]
    for uri, kind, said in cases:
        error = refusal(uri, tmp_path)
        assert type(error) is kind and error.exit_code == 2
        assert str(error).startswith(f"{uri}: {said}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    down = refusal(f"models:/{name}/1", tmp_path)
    assert type(down) is StorageError
    assert str(down).startswith(f"models:/{name}/1: MLflow still failing after retrying for 2s")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.url)
    assert_refused_in_one_line(
        server,
        f"models:/{name}@nope",
        f"model '{name}' has no alias 'nope' (aliases: champion)",
    )


def test_registry_permissions_are_refused(
    mlflow_auth_server: MLflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = mlflow_auth_server
    name = f"locked-{uuid.uuid4().hex[:8]}"
    httpx.post(
        f"{locked.url}/api/2.0/mlflow/registered-models/create",
        json={"name": name},
        auth=MLFLOW_ADMIN,
        timeout=10,
    ).raise_for_status()
    locked.create_user(f"user-{name}", "user-password-1")
    for user, status in (((f"user-{name}", "user-password-1"), 403), (("admin", "nope"), 401)):
        for key, value in locked.env(user).items():
            monkeypatch.setenv(key, value)
        error = refusal(f"models:/{name}/1", tmp_path)
        assert type(error) is StorageAuthError and error.exit_code == 2
        assert f"the MLflow server refused access ({status})" in str(error)


def publish(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``python -m predictor publish`` in this process: exit status, stdout, stderr."""
    from predictor.cli.offline import publish as publish_command

    capsys.readouterr()
    status = publish_command(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_publish_registers_a_bundle_that_serves_with_its_checks(
    server: ServerFactory,
    registry: MLflowServer,
    int_classifier_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mlflow import MlflowClient

    name = f"bundle-{uuid.uuid4().hex[:8]}"
    e2e = tmp_path / "e2e.json"
    e2e.write_text(json.dumps({"instances": ROWS}))
    common = ["--model", str(int_classifier_file), "--name", "taxi", "--version", "1.4.0"]
    status, out, err = publish(*common, "--e2e", str(e2e), "--to", f"models:/{name}", capsys=capsys)
    assert status == 0, err
    assert out == f"models:/{name}/1\n"
    version = MlflowClient().get_model_version(name, "1")
    assert version.tags["bundle_version"] == "1.4.0"
    assert version.tags["bundle_name"] == "taxi"
    status, _, err = publish(*common, "--e2e", str(e2e), "--to", f"models:/{name}", capsys=capsys)
    assert status == 1
    assert "bundle version 1.4.0 is already registered as version 1" in err
    running = server.start(f"models:/{name}/1", name="taxi", env=registry.env(), timeout=60)
    parameters = httpx.get(f"{running.url}/v2/models/taxi").json()["parameters"]
    assert parameters["bundle_version"] == "1.4.0"
    assert parameters["registry_version"] == "1"
    assert parameters["acceptance_e2e"].startswith("passed")


# --- S3 ----------------------------------------------------------------------------------


def test_s3_objects_and_prefixes_are_served_with_their_digest(
    server: ServerFactory, s3_server: S3Server, s3: Any, int_classifier_file: Path, tmp_path: Path
) -> None:
    client, bucket = s3
    client.upload_file(str(int_classifier_file), bucket, "one/model.joblib")
    client.upload_file(str(int_classifier_file), bucket, "prefix/v1/model.joblib")
    client.put_object(Bucket=bucket, Key="prefix/v1/README.md", Body=b"notes")
    digest = sha256_file(int_classifier_file)
    expected = joblib.load(int_classifier_file).predict(np.array(ROWS)).tolist()
    uri = f"s3://{bucket}/one/model.joblib"
    running = server.start(
        uri, name="m", env=s3_server.env(), args=["--model_sha256", digest], timeout=60
    )
    answer = infer_v2(running.url, "m")
    assert answer["outputs"][0]["data"] == expected
    assert answer["model_version"] == digest[:12]
    assert httpx.get(f"{running.url}/v2/models/m").json()["parameters"]["source"] == uri
    prefix = load_accepted(
        Settings(model_uri=f"s3://{bucket}/prefix/v1/", model_sha256=digest, download_dir=tmp_path)
    )
    assert prefix.estimator.predict(np.array(ROWS)).tolist() == expected
    assert sorted(p.name for p in prefix.artifact.root.iterdir()) == ["README.md", "model.joblib"]
    refused = server.run_to_exit(
        f"s3://{bucket}/one/model.joblib", env=s3_server.env(), args=["--model_sha256", "0" * 64]
    )
    assert refused.process.returncode == 1
    assert "refusing to unpickle it" in refused.log()


def test_each_s3_failure_is_one_classified_line(
    server: ServerFactory,
    s3_server: S3Server,
    s3: Any,
    tmp_path: Path,
    int_classifier_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, bucket = s3
    client.upload_file(str(int_classifier_file), bucket, "m.joblib")
    cases: list[tuple[str, type[PredictorError], str]] = [
        (f"s3://{bucket}/nope.joblib", StorageNotFoundError, "no such object"),
        (f"s3://{bucket}/empty/", StorageNotFoundError, f"no objects under s3://{bucket}/empty/"),
        (
            "s3://no-such-bucket-here/m.joblib",
            StorageNotFoundError,
            "bucket 'no-such-bucket-here' does not exist",
        ),
    ]
    for uri, kind, said in cases:
        error = refusal(uri, tmp_path)
        assert type(error) is kind and error.exit_code == 2
        assert str(error) == f"{uri}: {said}"
    uri = f"s3://{bucket}/m.joblib"
    locked = S3Server(tmp_path / "locked.log", authenticate=True)
    try:
        locked.wait_ready("/moto-api/", timeout=60)
        monkeypatch.setenv("AWS_ENDPOINT_URL", locked.url)
        denied = refusal(uri, tmp_path)
    finally:
        locked.stop()
    assert type(denied) is StorageAuthError
    assert str(denied).startswith(f"{uri}: permission denied (InvalidAccessKeyId)")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    down = refusal(uri, tmp_path)
    assert type(down) is StorageError
    assert str(down).startswith(f"{uri}: S3 still failing after retrying for 2s")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    assert_refused_in_one_line(
        server,
        uri,
        "no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
        "AWS_PROFILE, or give the pod a role (IRSA)",
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )


def test_publish_to_s3_is_immutable_and_completes_an_interrupted_publish(
    server: ServerFactory,
    s3_server: S3Server,
    s3: Any,
    int_classifier_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, bucket = s3
    # What a publish interrupted after its first upload leaves: the model, and no model.json.
    client.upload_file(str(int_classifier_file), bucket, "registry/taxi/2.0.0/model.joblib")
    common = ["--model", str(int_classifier_file), "--name", "taxi"]
    status, out, err = publish(
        *common, "--version", "2.0.0", "--to", f"s3://{bucket}/registry", capsys=capsys
    )
    assert status == 0, err
    assert out == f"s3://{bucket}/registry/taxi/2.0.0/\n"
    before = client.get_object(Bucket=bucket, Key="registry/taxi/2.0.0/model.json")["Body"].read()
    status, _, err = publish(
        *common, "--version", "2.0.0", "--to", f"s3://{bucket}/registry", capsys=capsys
    )
    assert status == 1
    assert "this version is published; versions are immutable" in err
    after = client.get_object(Bucket=bucket, Key="registry/taxi/2.0.0/model.json")["Body"].read()
    assert after == before
    client.put_object(Bucket=bucket, Key="registry/taxi/3.0.0/model.joblib", Body=b"other")
    status, _, err = publish(
        *common, "--version", "3.0.0", "--to", f"s3://{bucket}/registry", capsys=capsys
    )
    assert status == 2
    assert "already exists with other content" in err
    running = server.start(
        f"s3://{bucket}/registry/taxi/2.0.0/", name="taxi", env=s3_server.env(), timeout=60
    )
    assert infer_v2(running.url, "taxi")["model_version"] == "2.0.0"


def test_canary_start_writes_the_version_an_alias_names(
    registry: MLflowServer, logged: dict[str, Any], tmp_path: Path
) -> None:
    from predictor.rollout.audit import MODEL_ALIAS, TO_VERSION
    from predictor.rollout.cli import run
    from tests.k8s_emulator import CRD, ISVC, Emulator, crd, knative_isvc, write_kubeconfig

    emulator = Emulator()
    try:
        emulator.put(ISVC, "ml", "taxi", knative_isvc())
        emulator.put(CRD, None, "inferenceservices.serving.kserve.io", crd(with_canary=True))
        kubeconfig = write_kubeconfig(emulator, tmp_path / "kubeconfig")
        alias = f"models:/{logged['name']}@champion"
        said: list[str] = []
        status = run(
            ["start", "taxi", "--model-uri", alias, "--percent", "10", "--no-wait"]
            + ["--namespace", "ml", "--kubeconfig", str(kubeconfig)],
            out=said.append,
        )
        assert status == 0, said
        (patch,) = [
            emulator.sent_body(r)
            for r in emulator.requests("PATCH")
            if "inferenceservices" in str(r.url)
        ]
    finally:
        emulator.stop()
    concrete = f"models:/{logged['name']}/2"
    assert said[0] == f"{alias} is {concrete}"
    env = patch["spec"]["predictor"]["containers"][0]["env"]
    assert {"name": "PREDICTOR_MODEL_URI", "value": concrete} in env
    annotations = patch["metadata"]["annotations"]
    assert annotations[MODEL_ALIAS] == alias
    assert annotations[TO_VERSION] == "2"


def test_an_mlflow_model_folder_serves_from_disk_as_kserve_copies_it(
    int_classifier_file: Path, tmp_path: Path
) -> None:
    """KServe's storage initializer copies a model's files to /mnt/models; MLmodel leads the way."""
    import mlflow.sklearn

    estimator = joblib.load(int_classifier_file)
    folder = tmp_path / "mnt" / "models" / "taxi"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(estimator, str(folder), pip_requirements=["scikit-learn"])
    loaded = load_accepted(Settings(model_uri=str(tmp_path / "mnt" / "models")))
    assert loaded.mlflow_model is not None
    assert loaded.mlflow_model.serialization_format == "skops"
    assert loaded.artifact.model_file.name == "model.skops"
    assert loaded.estimator.predict(np.array(ROWS)).tolist() == (
        estimator.predict(np.array(ROWS)).tolist()
    )
