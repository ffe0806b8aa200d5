"""Model URIs and local artifacts: parsing, the one-model-file rule, digests, unpickling."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import joblib
import pytest
from sklearn.dummy import DummyClassifier

from predictor.errors import (
    DigestMismatchError,
    ModelFileError,
    StorageNotFoundError,
    UnsupportedURIError,
)
from predictor.loading.loader import load_model
from predictor.settings import Settings
from predictor.stores.fetch import fetch_model, find_model_file
from predictor.stores.uris import parse_model_uri


@pytest.mark.parametrize(
    ("uri", "scheme", "bucket", "path", "generation", "is_prefix"),
    [
        ("gs://bkt/models/m.joblib", "gs", "bkt", "models/m.joblib", None, False),
        ("gs://bkt/models/", "gs", "bkt", "models/", None, True),
        ("gs://bkt/models/v3", "gs", "bkt", "models/v3", None, True),
        ("gs://bkt/m.pkl#1712345", "gs", "bkt", "m.pkl", 1712345, False),
        ("file:///srv/models/m.pickle", "file", "", "/srv/models/m.pickle", None, False),
        ("s3://bkt/models/m.joblib", "s3", "bkt", "models/m.joblib", None, False),
        ("s3://bkt/models/v3/", "s3", "bkt", "models/v3/", None, True),
        ("models:/taxi/2", "models", "", "taxi", None, False),
        ("models:/taxi@champion", "models", "", "taxi", None, False),
    ],
)
def test_parse_model_uri(
    uri: str, scheme: str, bucket: str, path: str, generation: int | None, is_prefix: bool
) -> None:
    parsed = parse_model_uri(uri)
    assert (parsed.scheme, parsed.bucket, parsed.path, parsed.generation, parsed.is_prefix) == (
        scheme,
        bucket,
        path,
        generation,
        is_prefix,
    )


def test_registry_uris_keep_their_version_or_alias() -> None:
    assert parse_model_uri("models:/taxi/2").version == "2"
    assert parse_model_uri("models:/taxi@champion").alias == "champion"
    assert parse_model_uri("models:/team.taxi/12").path == "team.taxi"


def test_plain_paths_become_absolute_file_uris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_model_uri("models/m.joblib").path == str(tmp_path / "models" / "m.joblib")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("hdfs://nn/m.joblib", "unsupported model URI scheme 'hdfs:'"),
        ("https://example.com/m.joblib", "unsupported model URI scheme 'https:'"),
        ("gs:///m.joblib", "names no bucket"),
        ("s3:///m.joblib", "names no bucket; expected s3://bucket/path"),
        ("gs://bkt/m.joblib#latest", "'#' pins a GCS generation and expects a number"),
        ("s3://bkt/m.joblib#3", "pin an s3:// model by its digest"),
        ("models:/taxi", "expected models:/NAME/VERSION"),
        ("models:/taxi/latest", "expected models:/NAME/VERSION"),
        ("models:/taxi@", "expected models:/NAME/VERSION"),
        ("file://host/m.joblib", "file:// URIs must be absolute"),
        ("   ", "model URI is empty"),
    ],
)
def test_unsupported_uris_are_refused(uri: str, message: str) -> None:
    with pytest.raises(UnsupportedURIError, match=message):
        parse_model_uri(uri)


def test_a_folder_must_hold_exactly_one_model_file(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("hi")
    with pytest.raises(
        ModelFileError,
        match=r"no model file \(.joblib, .pkl, .pickle, .skops\) in .*; found: README.txt",
    ):
        find_model_file(tmp_path)
    (tmp_path / "a.joblib").write_bytes(b"x")
    assert find_model_file(tmp_path) == tmp_path / "a.joblib"
    (tmp_path / "b.pkl").write_bytes(b"x")
    with pytest.raises(
        ModelFileError, match="expected exactly one model file in .*, found 2: a.joblib, b.pkl"
    ):
        find_model_file(tmp_path)


def test_a_file_must_have_a_model_ending(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"x")
    with pytest.raises(ModelFileError, match="is not a model file"):
        find_model_file(path)


def test_a_missing_local_path_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(StorageNotFoundError, match="no such file or folder"):
        fetch_model(parse_model_uri(str(tmp_path / "nope")), download_dir=None, deadline_s=1)


def test_local_fetch_hashes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.joblib"
    joblib.dump(DummyClassifier().fit([[0], [1]], [0, 1]), path)
    fetched = fetch_model(parse_model_uri(f"file://{path}"), download_dir=None, deadline_s=1)
    assert fetched.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert fetched.generation is None


def test_a_wrong_pinned_digest_refuses_before_unpickling(tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (exec, ("raise SystemExit('unpickled!')",))

    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(Boom()))
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    settings = Settings(model_uri=str(path), model_sha256="0" * 64)
    with pytest.raises(DigestMismatchError) as caught:
        load_model(settings)
    assert str(caught.value).endswith(
        f"sha256 of m.pkl is {actual}, but the deployer pinned {'0' * 64}; refusing to unpickle it"
    )


def test_a_corrupt_pickle_is_a_one_line_model_error(tmp_path: Path) -> None:
    path = tmp_path / "m.joblib"
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(ModelFileError, match="^m.joblib does not load: "):
        load_model(Settings(model_uri=str(path)))


def test_an_object_without_predict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.joblib"
    joblib.dump({"not": "a model"}, path)
    with pytest.raises(
        ModelFileError, match="holds a dict, which has neither predict\\(\\) nor transform\\(\\)"
    ):
        load_model(Settings(model_uri=str(path)))
