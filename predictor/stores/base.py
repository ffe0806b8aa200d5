"""The bucket stores (``gs://``, ``s3://``) behind one protocol, found by the URI's scheme.

Every place that reads or writes a bucket (fetching a model, publishing a bundle, batch scoring,
the prediction log) asks ``bucket_store(scheme)`` for the adapter and speaks ``BucketStore``.
An adapter's module is imported only when its scheme is used, so a run that never touches S3
never imports boto3. MLflow's ``models:/`` is a registry, not a bucket (``stores.mlflow``);
local paths need no adapter.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

from predictor.errors import UnsupportedURIError
from predictor.stores.uris import ModelURI

ADAPTERS: dict[str, tuple[str, str]] = {
    "gs": ("predictor.stores.gcs", "GCSStore"),
    "s3": ("predictor.stores.s3", "S3Store"),
}
"""Each bucket scheme's adapter: its module and class, imported on first use."""


class BucketStore(Protocol):
    """Objects in buckets: download, list, create-only upload, compare, delete.

    Every failure is one ``StorageError`` (its subclasses say why) naming the URI.
    """

    last_generation: int | None
    """The generation of the last object ``upload_new`` wrote, where the store has them (GCS)."""

    def download(self, uri: ModelURI, dest: Path) -> dict[str, int | None]:
        """One object, or every object under a prefix, into ``dest``.

        Returns:
            Each downloaded file's path relative to ``dest``, and its generation (None where the
            store has none).
        """
        ...

    def download_object(self, uri: ModelURI, dest: Path) -> str:
        """The one object ``uri`` names into ``dest``; returns what tells its content apart."""
        ...

    def list_names(self, bucket: str, prefix: str) -> list[str]:
        """The names of the objects under ``prefix``, in name order."""
        ...

    def upload_new(self, path: Path, bucket: str, name: str) -> bool:
        """Upload a file as a new object; False (and nothing written) if the name exists."""
        ...

    def same_content(self, path: Path, bucket: str, name: str) -> bool:
        """Whether the object holds the same bytes as the local file."""
        ...

    def delete(self, bucket: str, names: list[str]) -> None:
        """Delete objects (those already gone are not an error)."""
        ...


def is_bucket(location: str) -> bool:
    """Whether ``location`` is a URI of a bucket store (``gs://``, ``s3://``)."""
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme in ADAPTERS


def bucket_store(scheme: str, *, deadline_s: float) -> BucketStore:
    """The adapter for ``scheme``, retrying transient faults within ``deadline_s`` per call.

    Raises:
        UnsupportedURIError: no bucket store serves that scheme.
    """
    if scheme not in ADAPTERS:
        raise UnsupportedURIError(
            f"no bucket store for {scheme + '://'!r}; expected one of "
            f"{', '.join(s + '://' for s in ADAPTERS)}"
        )
    module, name = ADAPTERS[scheme]
    adapter: type[BucketStore] = getattr(importlib.import_module(module), name)
    return adapter(deadline_s=deadline_s)  # type: ignore[call-arg]
