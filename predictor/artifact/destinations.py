"""Where ``publish`` writes a bundle: a bucket (create-only objects) or MLflow's registry.

In a bucket (``gs://`` or ``s3://``) every object is written create-only, ``model.json`` last, so
a half-written version is never servable and a published one is never overwritten. Files an
interrupted publish left behind are kept when their content is the same, so running the same
publish again completes it; other content under the same name is refused. In MLflow's registry
(``models:/NAME``) the bundle's files become a run's artifacts and a new model version, tagged
with the manifest's lineage; one bundle version is registered once.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from pathlib import Path
from typing import Any

from predictor.artifact.bundle import MANIFEST
from predictor.artifact.storage import ModelURI
from predictor.errors import PublishError, StorageError, VersionExistsError

logger = logging.getLogger(__name__)


def publish_to_bucket(
    target: ModelURI, relative: str, folder: Path, files: list[Path], *, deadline_s: float
) -> str:
    """Upload ``files`` under ``target``'s prefix + ``relative``; returns the URI to deploy.

    Raises:
        VersionExistsError: the version's model.json already exists.
        PublishError: another file exists with other content, or an upload failed.
    """
    prefix = target.path.rstrip("/") + "/" if target.path.strip("/") else ""
    store = _store(target.scheme, deadline_s)
    where = f"{target.scheme}://{target.bucket}/{prefix}{relative}"
    for path in files:
        name = prefix + relative + path.relative_to(folder).as_posix()
        try:
            if store.put_new(path, target.bucket, name):
                continue
            if path.name == MANIFEST:
                raise VersionExistsError(
                    f"{target.scheme}://{target.bucket}/{name} already exists: this version is "
                    "published; versions are immutable, publish a new version"
                )
            if not store.same_content(path, target.bucket, name):
                raise PublishError(
                    f"{target.scheme}://{target.bucket}/{name} already exists with other "
                    "content, and this version has no model.json yet: another publish of it is "
                    "under way or was interrupted with other files; publish a new version"
                )
            logger.info(
                "kept %s://%s/%s from an interrupted publish", target.scheme, target.bucket, name
            )
        except StorageError as e:
            raise PublishError(
                f"upload of {target.scheme}://{target.bucket}/{name} failed: {e}"
            ) from e
    generation = getattr(store, "last_generation", None)
    return f"{where}#{generation}" if generation else where


def publish_to_registry(
    target: ModelURI, folder: Path, lineage: dict[str, str], *, deadline_s: float
) -> str:
    """Register the bundle in ``folder`` as a new version of ``target``'s model; returns its URI.

    Raises:
        VersionExistsError: this bundle version is already registered.
        PublishError: the registry could not be written.
    """
    from predictor.artifact.registry import MLflowRegistry

    tags = {f"bundle_{k}": v for k, v in lineage.items()}
    try:
        version = MLflowRegistry(deadline_s=deadline_s).register(target, folder, tags)
    except StorageError as e:
        raise PublishError(f"registering in {target.raw} failed: {e}") from e
    return f"models:/{target.path}/{version}"


class _GCS:
    """Create-only writes to GCS (``ifGenerationMatch=0``), compared by MD5."""

    def __init__(self, deadline_s: float) -> None:
        from predictor.artifact.gcs import GCSFetcher

        self._gcs = GCSFetcher(deadline_s=deadline_s)
        self.last_generation: int | None = None

    def put_new(self, path: Path, bucket: str, name: str) -> bool:
        generation = self._gcs.upload_new(path, bucket, name)
        if generation is not None:
            self.last_generation = generation  # model.json goes last: its generation pins it
        return generation is not None

    def same_content(self, path: Path, bucket: str, name: str) -> bool:
        return self._gcs.md5_base64(bucket, name) == base64.b64encode(_md5(path)).decode()


class _S3:
    """Create-only writes to S3 (``If-None-Match: *``), compared by ETag (single-part MD5)."""

    def __init__(self, deadline_s: float) -> None:
        from predictor.artifact.s3 import S3Store

        self._s3 = S3Store(deadline_s=deadline_s)

    def put_new(self, path: Path, bucket: str, name: str) -> bool:
        return self._s3.put_new(path, bucket, name)

    def same_content(self, path: Path, bucket: str, name: str) -> bool:
        return self._s3.etag(bucket, name) == _md5(path).hex()


def _md5(path: Path) -> bytes:
    """The file's MD5 (how both stores report an object's content), read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def _store(scheme: str, deadline_s: float) -> Any:
    return _GCS(deadline_s) if scheme == "gs" else _S3(deadline_s)
