"""Model bundles end to end: publish, serve, and every reason a bundle must not become ready.

Real bundles are published into temporary folders and into fake-gcs-server; servers run as real
processes. A good bundle serves with its lineage on the wire; a tampered artifact, a wrong pinned
digest, version skew, a failing end-to-end row and an out-of-range metric each stop start-up
with the right message; a second publish of a version fails and leaves the first byte-identical.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from unittest import mock

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from predictor.demo import make_trips
from predictor.errors import IncompatibleModelError, PublishError, VersionExistsError
from predictor.loading.loader import load_model
from predictor.publishing.publish import BundleSpec, publish, stage_bundle
from predictor.settings import Settings
from predictor.stores.files import sha256_file
from tests.gcs import GCSBucket
from tests.helpers import REPO_ROOT, ServerFactory


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("sets")
    features, labels = make_trips(300, seed=7)
    rows = features.to_numpy().tolist()
    (folder / "e2e.json").write_text(json.dumps({"instances": rows[:20]}))
    (folder / "confidence.json").write_text(
        json.dumps({"instances": rows, "labels": labels.tolist()})
    )
    return folder / "e2e.json", folder / "confidence.json"


def spec_for(demo_model_dir: Path, sets: tuple[Path, Path], version: str = "1.0.0") -> BundleSpec:
    return BundleSpec(
        model_file=demo_model_dir / "model.joblib",
        name="taxi",
        version=version,
        created_by="ci@example.com",
        e2e_file=sets[0],
        confidence_file=sets[1],
        metric="accuracy",
        minimum=0.5,
        training_data_uri="gs://data/trips/2026-11",
        training_data_version="2026-11",
        feature_extractor_version="fx-1",
        metrics={"accuracy": 0.93, "roc_auc": 0.97},
    )


@pytest.fixture
def bundle(tmp_path: Path, demo_model_dir: Path, sets: tuple[Path, Path]) -> Path:
    return Path(publish(spec_for(demo_model_dir, sets), str(tmp_path / "registry")))


def rewrite_manifest(bundle: Path, change: dict[str, object]) -> None:
    path = bundle / "model.json"
    document = json.loads(path.read_text())
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        node = document
        for key in parents:
            node = node[key]
        node[last] = value
    path.write_text(json.dumps(document))


def test_a_good_bundle_serves_with_its_lineage(server: ServerFactory, bundle: Path) -> None:
    running = server.start(str(bundle), name="taxi")
    metadata = httpx.get(f"{running.url}/v2/models/taxi").json()
    assert metadata["versions"] == ["1.0.0"]
    assert metadata["parameters"]["engine"].startswith("ONNX Runtime ")
    assert "from the bundle, verified against scikit-learn" in metadata["parameters"]["engine"]
    parameters = metadata["parameters"]
    assert parameters["bundle_training_data_version"] == "2026-11"
    assert parameters["bundle_created_by"] == "ci@example.com"
    assert parameters["bundle_metric_accuracy"] == "0.93"
    assert parameters["bundle_metric_roc_auc"] == "0.97"
    assert parameters["sha256"] == sha256_file(bundle / "model.joblib")
    assert parameters["acceptance_e2e"] == "passed: 20/20 rows as expected (atol 1e-06)"
    assert parameters["acceptance_confidence"].startswith("passed: accuracy=")
    answer = httpx.post(f"{running.url}/v1/models/taxi:predict", json={"instances": [[1, 2, 3]]})
    assert answer.json()["model_version"] == "1.0.0"
    assert answer.headers["x-model-version"] == "1.0.0"


def test_the_home_page_shows_what_is_deployed(server: ServerFactory, bundle: Path) -> None:
    running = server.start(str(bundle), name="taxi")
    home = httpx.get(f"{running.url}/").json()
    assert home["status"] == "alive"
    (model,) = home["models"]
    assert (model["name"], model["version"], model["sha256"]) == (
        "taxi",
        "1.0.0",
        sha256_file(bundle / "model.joblib"),
    )
    assert model["parameters"]["bundle_training_data_version"] == "2026-11"
    assert model["parameters"]["acceptance_e2e"].startswith("passed")
    page = httpx.get(f"{running.url}/", headers={"accept": "text/html,application/xhtml+xml"})
    assert page.headers["content-type"].startswith("text/html")
    assert "<h2>taxi <span class='version'>1.0.0</span></h2>" in page.text
    assert "2026-11" in page.text


def refused(server: ServerFactory, bundle: Path, env: dict[str, str] | None = None) -> str:
    """Start on a bundle that its checks refuse: one line, no traceback, exit 1 (refused)."""
    result = server.run_to_exit(str(bundle), name="taxi", env=env)
    assert result.process.returncode == 1, result.log()
    assert "Traceback" not in result.log()
    return result.log()


def test_a_tampered_artifact_is_refused(server: ServerFactory, bundle: Path) -> None:
    recorded = sha256_file(bundle / "model.joblib")
    with (bundle / "model.joblib").open("ab") as f:
        f.write(b"\0")
    log = refused(server, bundle)
    actual = sha256_file(bundle / "model.joblib")
    assert f"artifact model.joblib: sha256 is {actual}, but model.json records {recorded}" in log


def test_a_wrong_pinned_digest_is_refused(server: ServerFactory, bundle: Path) -> None:
    log = refused(server, bundle, env={"PREDICTOR_MODEL_SHA256": "c" * 64})
    assert f"but the deployer pinned {'c' * 64}; refusing to unpickle it" in log


def test_version_skew_is_refused_unless_allowed(server: ServerFactory, bundle: Path) -> None:
    rewrite_manifest(bundle, {"runtime.scikit-learn": "1.0.2"})
    log = refused(server, bundle)
    assert "scikit-learn 1.0.2 (saved) vs" in log
    assert "PREDICTOR_ALLOW_VERSION_SKEW=true" in log
    running = server.start(str(bundle), name="taxi", env={"PREDICTOR_ALLOW_VERSION_SKEW": "true"})
    assert "version skew: scikit-learn 1.0.2 (saved)" in running.log()


def test_a_failing_e2e_row_is_refused(server: ServerFactory, bundle: Path) -> None:
    path = bundle / "acceptance" / "e2e.json"
    data = json.loads(path.read_text())
    right = data["expected"]["predict"][3]
    data["expected"]["predict"][3] = "short" if right != "short" else "long"
    path.write_text(json.dumps(data))
    rewrite_manifest(bundle, {"acceptance.e2e.sha256": sha256_file(path)})
    log = refused(server, bundle)
    assert "e2e: FAILED: 19/20 rows as expected" in log
    assert f"row 3: predict expected '{data['expected']['predict'][3]}', got '{right}'" in log


def test_an_out_of_range_metric_is_refused(server: ServerFactory, bundle: Path) -> None:
    rewrite_manifest(bundle, {"acceptance.confidence.min": 0.99})
    log = refused(server, bundle)
    assert "confidence: FAILED: accuracy=" in log
    assert "outside [0.99, ]" in log


def test_a_pickle_from_another_sklearn_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.joblib"
    with mock.patch("sklearn.base.__version__", "1.0.2"):
        joblib.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), path)
    with pytest.raises(
        IncompatibleModelError,
        match="Trying to unpickle estimator LogisticRegression from version 1.0.2",
    ):
        load_model(Settings(model_uri=str(path)))
    assert (
        load_model(Settings(model_uri=str(path), allow_version_skew=True)).signature.task
        == "classification"
    )


def test_validate_cli_accepts_and_refuses(bundle: Path) -> None:
    command = [sys.executable, "-m", "predictor", "validate", str(bundle)]
    good = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith(f"ACCEPTED {bundle}: version 1.0.0")
    assert "e2e: passed: 20/20 rows" in good.stdout
    rewrite_manifest(bundle, {"acceptance.confidence.max": 0.1})
    bad = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert bad.returncode == 1
    assert "REFUSED" in bad.stdout and "outside [0.5, 0.1]" in bad.stdout


def test_publishing_to_gcs_is_immutable(
    gcs: GCSBucket, demo_model_dir: Path, sets: tuple[Path, Path], server: ServerFactory
) -> None:
    uri = publish(spec_for(demo_model_dir, sets), gcs.uri("registry"))
    client = gcs.client()
    blobs = {b.name: (b.generation, b.download_as_bytes()) for b in client.list_blobs(gcs.name)}
    assert sorted(blobs) == [
        "registry/taxi/1.0.0/acceptance/confidence.json",
        "registry/taxi/1.0.0/acceptance/e2e.json",
        "registry/taxi/1.0.0/model.joblib",
        "registry/taxi/1.0.0/model.json",
        "registry/taxi/1.0.0/model.onnx",  # the native engine's model, converted at publish
    ]
    assert (
        uri == f"gs://{gcs.name}/registry/taxi/1.0.0/#{blobs['registry/taxi/1.0.0/model.json'][0]}"
    )
    with pytest.raises(VersionExistsError, match="versions are immutable"):
        publish(spec_for(demo_model_dir, sets), gcs.uri("registry"))
    after = {b.name: (b.generation, b.download_as_bytes()) for b in client.list_blobs(gcs.name)}
    assert after == blobs
    running = server.start(uri, name="taxi", env={"STORAGE_EMULATOR_HOST": gcs.url})
    metadata = httpx.get(f"{running.url}/v2/models/taxi").json()
    assert metadata["versions"] == ["1.0.0"]


def test_an_interrupted_gcs_publish_is_completed_by_running_it_again(
    gcs: GCSBucket, demo_model_dir: Path, sets: tuple[Path, Path]
) -> None:
    bucket = gcs.client().bucket(gcs.name)
    # What a publish interrupted after its first upload leaves: the model, and no model.json.
    model = bucket.blob("registry/taxi/1.0.0/model.joblib")
    model.upload_from_filename(str(demo_model_dir / "model.joblib"))
    left = model.generation
    uri = publish(spec_for(demo_model_dir, sets), gcs.uri("registry"))
    names = sorted(b.name for b in gcs.client().list_blobs(gcs.name))
    assert names == [
        "registry/taxi/1.0.0/acceptance/confidence.json",
        "registry/taxi/1.0.0/acceptance/e2e.json",
        "registry/taxi/1.0.0/model.joblib",
        "registry/taxi/1.0.0/model.json",
        "registry/taxi/1.0.0/model.onnx",
    ]
    assert bucket.get_blob("registry/taxi/1.0.0/model.joblib").generation == left  # kept as is
    assert uri.startswith(f"gs://{gcs.name}/registry/taxi/1.0.0/#")
    with pytest.raises(VersionExistsError, match="versions are immutable"):
        publish(spec_for(demo_model_dir, sets), gcs.uri("registry"))


def test_a_partial_gcs_publish_of_other_content_is_refused(
    gcs: GCSBucket, demo_model_dir: Path, sets: tuple[Path, Path]
) -> None:
    bucket = gcs.client().bucket(gcs.name)
    bucket.blob("registry/taxi/1.0.0/model.joblib").upload_from_string(b"another model")
    with pytest.raises(PublishError, match="already exists with other content"):
        publish(spec_for(demo_model_dir, sets), gcs.uri("registry"))
    assert bucket.get_blob("registry/taxi/1.0.0/model.json") is None


def test_publish_cli_exit_codes(
    tmp_path: Path, demo_model_dir: Path, sets: tuple[Path, Path]
) -> None:
    command = [
        sys.executable, "-m", "predictor", "publish",
        "--model", str(demo_model_dir / "model.joblib"),
        "--name", "taxi", "--version", "2.0.0",
        "--e2e", str(sets[0]),
        "--to", str(tmp_path / "registry"),
    ]  # fmt: skip
    first = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"{tmp_path}/registry/taxi/2.0.0/"
    before = (tmp_path / "registry/taxi/2.0.0/model.json").read_bytes()
    second = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert second.returncode == 1
    assert "taxi 2.0.0 is published; versions are immutable" in second.stderr
    assert (tmp_path / "registry/taxi/2.0.0/model.json").read_bytes() == before


def test_validate_copies_only_an_accepted_bundle(bundle: Path, tmp_path: Path) -> None:
    target = tmp_path / "baked"
    command = [sys.executable, "-m", "predictor", "validate", str(bundle), "--copy-to", str(target)]
    good = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert good.returncode == 0, good.stderr
    copied = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert copied == [
        "acceptance/confidence.json",
        "acceptance/e2e.json",
        "model.joblib",
        "model.json",
        "model.onnx",
    ]
    assert (target / "model.joblib").read_bytes() == (bundle / "model.joblib").read_bytes()
    rewrite_manifest(bundle, {"acceptance.confidence.min": 0.99})
    refused_target = tmp_path / "refused"
    bad = subprocess.run(
        [*command[:-1], str(refused_target)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert bad.returncode == 1
    assert not refused_target.exists()


CUSTOM_MODULE = """
import numpy as np


def doubled(x):
    return np.asarray(x, dtype=float) * 2.0
"""


def test_custom_code_travels_with_the_bundle(
    tmp_path: Path, server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    source = tmp_path / "src"
    source.mkdir()
    (source / "zoo_custom.py").write_text(CUSTOM_MODULE)
    monkeypatch.syspath_prepend(str(source))
    custom = importlib.import_module("zoo_custom")
    x = np.random.default_rng(1).normal(size=(80, 3))
    y = (x[:, 0] > 0).astype(int)
    model = make_pipeline(FunctionTransformer(custom.doubled), LogisticRegression()).fit(x, y)
    bare = tmp_path / "model.joblib"
    joblib.dump(model, bare)
    monkeypatch.delitem(sys.modules, "zoo_custom")

    refused = server.run_to_exit(str(bare), name="custom")
    assert refused.process.returncode == 2
    assert (
        "model.joblib needs the Python module 'zoo_custom', which is not installed here"
        in refused.log()
    )
    assert "Traceback" not in refused.log()

    spec = BundleSpec(
        model_file=bare, name="custom", version="1.0.0", code_files=(source / "zoo_custom.py",)
    )
    uri = publish(spec, str(tmp_path / "registry"))
    bundle = Path(uri)
    manifest = json.loads((bundle / "model.json").read_text())
    assert manifest["code"] == [
        {"path": "code/zoo_custom.py", "sha256": sha256_file(bundle / "code" / "zoo_custom.py")}
    ]
    running = server.start(uri, name="custom")
    answer = httpx.post(
        f"{running.url}/v1/models/custom:predict", json={"instances": x[:4].tolist()}
    )
    assert answer.json()["predictions"] == model.predict(x[:4]).tolist()
    running.stop()

    (bundle / "code" / "zoo_custom.py").write_text(CUSTOM_MODULE + "\nimport os\n")
    tampered = server.run_to_exit(uri, name="custom")
    assert tampered.process.returncode == 1
    assert "code code/zoo_custom.py: sha256 is" in tampered.log()


def test_a_sample_records_the_frames_names_and_types_in_the_manifest(tmp_path: Path) -> None:
    """A categorical column of digits reads as numbers in CSV; Parquet keeps it as text."""
    rng = np.random.default_rng(9)
    frame = pd.DataFrame(
        {"zone": rng.integers(1, 4, 200).astype(str), "area": rng.normal(60, 15, 200)}
    )
    labels = np.where(frame.area > 60, "big", "small")
    bare = make_pipeline(
        ColumnTransformer([("zone", OneHotEncoder(), [0])], remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame.to_numpy(dtype=object), labels)  # fitted on a bare array: no feature names
    joblib.dump(bare, tmp_path / "model.joblib")
    frame.to_parquet(tmp_path / "sample.parquet")
    frame.to_csv(tmp_path / "sample.csv", index=False)

    published = {
        kind: Path(
            publish(
                BundleSpec(
                    tmp_path / "model.joblib",
                    "zones",
                    f"1.0.{i}",
                    sample_file=tmp_path / f"sample.{kind}",
                    string_features=("zone",) if kind == "csv" else (),
                ),
                str(tmp_path / "registry"),
            )
        )
        for i, kind in enumerate(("parquet", "csv"))
    }

    for folder in published.values():
        features = json.loads((folder / "model.json").read_text())["features"]
        area = pytest.approx(float(frame["area"].mean()))
        assert features == [
            {"name": "zone", "dtype": "BYTES"},
            {"name": "area", "dtype": "FP64", "mean": area},
        ]
    with pytest.raises(PublishError, match="the model takes 2 features .* the sample has 1"):
        frame[["area"]].to_csv(tmp_path / "one.csv", index=False)
        stage_bundle(
            BundleSpec(
                tmp_path / "model.joblib", "zones", "2.0.0", sample_file=tmp_path / "one.csv"
            ),
            tmp_path / "staging",
        )


def test_a_bundle_serves_by_any_path_a_user_can_type(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from tests.helpers import served_app

    (tmp_path / "work").mkdir()
    (tmp_path / "linked").symlink_to(bundle, target_is_directory=True)
    monkeypatch.chdir(tmp_path / "work")
    relative = Path("..") / bundle.relative_to(tmp_path)
    for typed in (
        str(relative),
        f"{relative}/",
        str(tmp_path / "work" / ".." / bundle.relative_to(tmp_path)),
        str(tmp_path / "linked"),
        f"{tmp_path / 'linked'}/",
    ):
        with TestClient(served_app(typed, name="taxi")) as client:
            home = client.get("/", headers={"accept": "application/json"})
            html = client.get("/", headers={"accept": "text/html"})
            metadata = client.get("/v2/models/taxi")
        assert (home.status_code, html.status_code, metadata.status_code) == (200, 200, 200), typed
        assert metadata.json()["parameters"]["bundle_version"] == "1.0.0", typed
        assert home.json()["models"][0]["version"] == "1.0.0", typed
