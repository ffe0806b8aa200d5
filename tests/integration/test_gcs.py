"""gs:// through the real google-cloud-storage client against fake-gcs-server.

Covers: one object, a prefix holding one model, a pinned generation, a missing object, a
missing bucket, an empty prefix, 401 (no credentials) and 403 (no permission) via a fault proxy,
transient 503s retried with backoff, and the deadline that ends retrying.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from predictor.errors import StorageAuthError, StorageError, StorageNotFoundError
from predictor.stores.fetch import fetch_model
from predictor.stores.files import sha256_file
from predictor.stores.uris import parse_model_uri
from tests.gcs import FaultProxy, GCSBucket, GCSEmulator

pytestmark = pytest.mark.gcs


def fetch(uri: str, tmp_path: Path, deadline: float = 20.0):  # type: ignore[no-untyped-def]
    return fetch_model(parse_model_uri(uri), download_dir=tmp_path / "dl", deadline_s=deadline)


@pytest.fixture
def proxy(gcs_emulator: GCSEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    fault = FaultProxy(upstream=gcs_emulator.url)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fault.url)
    try:
        yield fault
    finally:
        fault.stop()


def test_one_object(gcs: GCSBucket, regressor_file: Path, tmp_path: Path) -> None:
    generation = gcs.upload_file("models/reg.pkl", regressor_file)
    fetched = fetch(gcs.uri("models/reg.pkl"), tmp_path)
    assert fetched.model_file.name == "reg.pkl"
    assert fetched.sha256 == sha256_file(regressor_file)
    assert fetched.generation == generation
    assert fetched.model_file.read_bytes() == regressor_file.read_bytes()
    assert not list(fetched.root.glob(".*partial"))


def test_a_prefix_holding_one_model_and_other_files(
    gcs: GCSBucket, regressor_file: Path, tmp_path: Path
) -> None:
    gcs.upload_file("m/v1/model.pkl", regressor_file)
    gcs.upload("m/v1/notes/README.md", b"notes")
    gcs.upload("m/v2/model.pkl", b"other version")
    fetched = fetch(gcs.uri("m/v1/"), tmp_path)
    assert fetched.model_file.name == "model.pkl"
    assert sorted(fetched.generations) == ["model.pkl", "notes/README.md"]


def test_a_pinned_generation_is_the_one_fetched(gcs: GCSBucket, tmp_path: Path) -> None:
    first = gcs.upload("m.joblib", b"first")
    gcs.upload("m.joblib", b"second")
    fetched = fetch(gcs.uri(f"m.joblib#{first}"), tmp_path)
    assert fetched.model_file.read_bytes() == b"first"
    assert fetched.generation == first


def test_a_missing_object(gcs: GCSBucket, tmp_path: Path) -> None:
    with pytest.raises(StorageNotFoundError) as caught:
        fetch(gcs.uri("nope/m.joblib"), tmp_path)
    assert str(caught.value) == f"{gcs.uri('nope/m.joblib')}: no such object"


def test_a_missing_pinned_generation(gcs: GCSBucket, tmp_path: Path) -> None:
    gcs.upload("m.joblib", b"x")
    with pytest.raises(StorageNotFoundError, match="no such object at generation 42"):
        fetch(gcs.uri("m.joblib#42"), tmp_path)


def test_a_missing_bucket(gcs: GCSBucket, tmp_path: Path) -> None:
    with pytest.raises(StorageNotFoundError) as caught:
        fetch("gs://no-such-bucket-xyz/m.joblib", tmp_path)
    assert (
        str(caught.value)
        == "gs://no-such-bucket-xyz/m.joblib: bucket 'no-such-bucket-xyz' does not exist"
    )


def test_an_empty_prefix(gcs: GCSBucket, tmp_path: Path) -> None:
    with pytest.raises(StorageNotFoundError, match="no objects under gs://.*/empty/"):
        fetch(gcs.uri("empty/"), tmp_path)


def test_permission_denied(gcs: GCSBucket, proxy: FaultProxy, tmp_path: Path) -> None:
    proxy.deny_status = 403
    with pytest.raises(StorageAuthError) as caught:
        fetch(gcs.uri("m.joblib"), tmp_path)
    assert "permission denied (403)" in str(caught.value)
    assert f"roles/storage.objectViewer on bucket '{gcs.name}'" in str(caught.value)


def test_unauthorized_is_reported_as_a_credentials_problem(
    gcs: GCSBucket, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxy.deny_status = 401
    with pytest.raises(StorageAuthError, match=r"\(401\)"):
        fetch(gcs.uri("m.joblib"), tmp_path)


def test_transient_errors_are_retried(gcs: GCSBucket, proxy: FaultProxy, tmp_path: Path) -> None:
    gcs.upload("m.joblib", b"payload")
    proxy.fail_first = 2
    fetched = fetch(gcs.uri("m.joblib"), tmp_path)
    assert fetched.model_file.read_bytes() == b"payload"
    assert len(proxy.requests) >= 3


def test_retrying_stops_at_the_deadline(gcs: GCSBucket, proxy: FaultProxy, tmp_path: Path) -> None:
    proxy.fail_first = 10_000
    with pytest.raises(StorageError, match="GCS still failing after retrying for 2s"):
        fetch(gcs.uri("m.joblib"), tmp_path, deadline=2.0)
    assert not list((tmp_path / "dl").rglob("*.joblib"))


def test_a_slow_gcs_ends_within_the_deadline(
    gcs: GCSBucket, proxy: FaultProxy, tmp_path: Path
) -> None:
    gcs.upload("m.joblib", b"payload")
    proxy.delay_s = 3.0
    started = time.monotonic()
    with pytest.raises(StorageError, match="GCS still failing after retrying for 1s"):
        fetch(gcs.uri("m.joblib"), tmp_path, deadline=1.0)
    assert time.monotonic() - started < 10


def test_a_truncated_download_is_refused_and_not_kept(
    gcs: GCSBucket, proxy: FaultProxy, tmp_path: Path
) -> None:
    gcs.upload("m.joblib", b"0123456789" * 1000)
    proxy.truncate_media = True
    with pytest.raises(StorageError, match="the download was corrupted \\(checksum mismatch\\)"):
        fetch(gcs.uri("m.joblib"), tmp_path)
    assert not [p for p in (tmp_path / "dl").rglob("*") if p.is_file()]
