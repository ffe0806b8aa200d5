"""Where ``publish`` writes a bundle: a bucket (create-only objects) or MLflow's registry.

In a bucket (``gs://`` or ``s3://``) every object is written create-only, ``model.json`` last, so
a half-written version is never servable and a published one is never overwritten. Files an
interrupted publish left behind are kept when their content is the same, so running the same
publish again completes it; other content under the same name is refused. In MLflow's registry
(``models:/NAME``) the bundle's files become a run's artifacts and a new model version, tagged
with the manifest's lineage; one bundle version is registered once.
"""

from __future__ import annotations

import logging
from pathlib import Path

from predictor.bundle.manifest import MANIFEST
from predictor.errors import PublishError, StorageError, VersionExistsError
from predictor.stores.base import bucket_store
from predictor.stores.uris import ModelURI, as_prefix

logger = logging.getLogger(__name__)


def publish_to_bucket(
    target: ModelURI, relative: str, folder: Path, files: list[Path], *, deadline_s: float
) -> str:
    """Upload ``files`` under ``target``'s prefix + ``relative``; returns the URI to deploy.

    Raises:
        VersionExistsError: the version's model.json already exists.
        PublishError: another file exists with other content, or an upload failed.
    """
    prefix = as_prefix(target.path)
    store = bucket_store(target.scheme, deadline_s=deadline_s)
    where = f"{target.scheme}://{target.bucket}/{prefix}{relative}"
    for path in files:
        name = prefix + relative + path.relative_to(folder).as_posix()
        try:
            if store.upload_new(path, target.bucket, name):
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
    generation = store.last_generation  # model.json went last: its generation pins it
    return f"{where}#{generation}" if generation else where


def publish_to_registry(
    target: ModelURI, folder: Path, lineage: dict[str, str], *, deadline_s: float
) -> str:
    """Register the bundle in ``folder`` as a new version of ``target``'s model; returns its URI.

    Raises:
        VersionExistsError: this bundle version is already registered.
        PublishError: the registry could not be written.
    """
    from predictor.stores.mlflow import MLflowRegistry

    tags = {f"bundle_{k}": v for k, v in lineage.items()}
    try:
        version = MLflowRegistry(deadline_s=deadline_s).register(target, folder, tags)
    except StorageError as e:
        raise PublishError(f"registering in {target.raw} failed: {e}") from e
    return f"models:/{target.path}/{version}"
