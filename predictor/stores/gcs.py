"""Downloading from Google Cloud Storage: a thin adapter over google-cloud-storage.

Application Default Credentials (Workload Identity included), anonymous access when there are
none, ``STORAGE_EMULATOR_HOST`` honoured by the client. Transient errors are retried with
backoff inside a total deadline, each call bounded by it too; every failure becomes one
``StorageError`` naming the URI and saying what to do. Objects land in ``.partial`` files that
are renamed only when complete and verified by the client's checksum.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from predictor.errors import StorageAuthError, StorageError, StorageNotFoundError
from predictor.stores.files import md5_file, partial_file
from predictor.stores.retrying import one_line
from predictor.stores.uris import PINNED_IN_PREFIX, ModelURI, as_prefix, object_uri

logger = logging.getLogger(__name__)


class GCSStore:
    """A ``BucketStore`` over google-cloud-storage; its errors become ``StorageError``."""

    def __init__(self, *, deadline_s: float) -> None:
        self._deadline_s = deadline_s
        # One slow call must not outlast the whole budget: each call gets at most the deadline.
        self._timeout = min(60.0, deadline_s)
        self._anonymous = False
        self._made: Any = None
        self.last_generation: int | None = None

    @functools.cached_property
    def _retry(self) -> Any:
        """Retry transient errors with backoff, within the deadline.

        Built on first use, so that GCS's client is imported only by runs that use GCS.
        """
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_delay(initial=0.25, maximum=8.0).with_timeout(self._deadline_s)

    def _client(self) -> Any:
        """One client per fetcher: scoring and the prediction log call it once per object."""
        if self._made is not None:
            return self._made
        from google.auth.credentials import AnonymousCredentials
        from google.auth.exceptions import DefaultCredentialsError
        from google.cloud import storage

        try:
            client = storage.Client()
        except DefaultCredentialsError:
            logger.info("no Application Default Credentials found; using anonymous GCS access")
            client = storage.Client.create_anonymous_client()
        self._anonymous = isinstance(getattr(client, "_credentials", None), AnonymousCredentials)
        self._made = client
        return client

    def download(self, uri: ModelURI, dest: Path) -> dict[str, int | None]:
        """Download one object, or every object under a prefix, into ``dest``.

        Returns:
            The generation of each downloaded object, by its path relative to ``dest``.
        """
        with self._classified(uri) as client:
            if uri.is_prefix:
                return self._download_prefix(client, uri, dest)
            return self._download_object(client, uri, dest)

    def download_object(self, uri: ModelURI, dest: Path) -> str:
        """Download the one object ``uri`` names, whatever its name, into ``dest``.

        Returns:
            The object's generation.
        """
        with self._classified(uri) as client:
            return str(next(iter(self._download_object(client, uri, dest).values())))

    def list_names(self, bucket: str, prefix: str) -> list[str]:
        """The names of the objects under ``gs://bucket/prefix``, in name order."""
        uri = object_uri("gs", bucket, prefix)
        with self._classified(uri) as client:
            listing = client.list_blobs(
                bucket, prefix=prefix, retry=self._retry, timeout=self._timeout
            )
            return sorted(b.name for b in listing if not b.name.endswith("/"))

    def upload_new(self, path: Path, bucket: str, name: str) -> bool:
        """Upload a file as a new object; False if the name exists (``last_generation`` is set).

        The write is create-only (``ifGenerationMatch=0``), so an object is never overwritten.
        """
        from google.api_core import exceptions as gexc

        with self._classified(object_uri("gs", bucket, name)) as client:
            blob = client.bucket(bucket).blob(name)
            try:
                blob.upload_from_filename(
                    str(path), if_generation_match=0, retry=self._retry, timeout=self._timeout
                )
            except gexc.PreconditionFailed:
                return False
            self.last_generation = int(blob.generation)
            return True

    def same_content(self, path: Path, bucket: str, name: str) -> bool:
        """Whether the object's MD5 (as GCS reports it, base64) is the local file's."""
        with self._classified(object_uri("gs", bucket, name)) as client:
            found = client.bucket(bucket).get_blob(name, retry=self._retry, timeout=self._timeout)
            expected = base64.b64encode(md5_file(path)).decode()
            return found is not None and str(found.md5_hash) == expected

    def delete(self, bucket: str, names: list[str]) -> None:
        """Delete objects (those already gone are not an error)."""
        from google.api_core import exceptions as gexc

        with self._classified(object_uri("gs", bucket, "")) as client:
            for name in names:
                try:
                    client.bucket(bucket).blob(name).delete(retry=self._retry)
                except gexc.NotFound:
                    pass

    @contextlib.contextmanager
    def _classified(self, uri: ModelURI) -> Iterator[Any]:
        """A client, and every failure while using it turned into one ``StorageError``."""
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc
        from google.cloud.storage.exceptions import DataCorruption

        client = None
        try:
            client = self._client()
            yield client
        except gexc.NotFound as e:
            raise self._not_found(client, uri) from e
        except (gexc.Unauthorized, auth_exc.RefreshError, auth_exc.InvalidOperation) as e:
            # An anonymous client answers a 401 by trying to refresh, which cannot work.
            raise StorageAuthError(self._auth_message(uri, 401)) from e
        except gexc.Forbidden as e:
            raise StorageAuthError(self._auth_message(uri, 403)) from e
        except DataCorruption as e:
            raise StorageError(
                f"{uri.raw}: the download was corrupted (checksum mismatch); nothing was kept"
            ) from e
        except gexc.RetryError as e:
            raise StorageError(
                f"{uri.raw}: GCS still failing after retrying for {self._deadline_s:.0f}s "
                f"({one_line(e.cause or e)})"
            ) from e
        except (gexc.GoogleAPIError, auth_exc.GoogleAuthError, OSError) as e:
            raise StorageError(f"{uri.raw}: GCS request failed: {one_line(e)}") from e

    def _download_object(self, client: Any, uri: ModelURI, dest: Path) -> dict[str, int | None]:
        # Read the metadata first, then download that exact generation by name (not by the
        # media link), so an overwrite between the two calls cannot mix two versions.
        bucket = client.bucket(uri.bucket)
        found = bucket.get_blob(
            uri.path, generation=uri.generation, retry=self._retry, timeout=self._timeout
        )
        if found is None:
            raise self._not_found(client, uri)
        blob = bucket.blob(uri.path, generation=found.generation)
        name = Path(uri.path).name
        self._download_blob(blob, dest / name)
        return {name: int(found.generation)}

    def _download_prefix(self, client: Any, uri: ModelURI, dest: Path) -> dict[str, int | None]:
        prefix = as_prefix(uri.path)
        generations: dict[str, int | None] = {}
        listing = client.list_blobs(
            uri.bucket, prefix=prefix, retry=self._retry, timeout=self._timeout
        )
        for blob in listing:
            relative = blob.name[len(prefix) :]
            if not relative or relative.endswith("/"):
                continue  # folder placeholder objects
            generation = int(blob.generation)
            if relative == PINNED_IN_PREFIX and uri.generation is not None:
                generation = uri.generation  # '#<generation>' on a prefix pins the manifest
            pinned = client.bucket(uri.bucket).blob(blob.name, generation=generation)
            self._download_blob(pinned, dest / relative)
            generations[relative] = generation
        if uri.generation is not None and PINNED_IN_PREFIX not in generations:
            raise StorageNotFoundError(
                f"{uri.raw}: '#<generation>' on a prefix pins its {PINNED_IN_PREFIX}, "
                "but the prefix has none"
            )
        if not generations:
            raise StorageNotFoundError(f"{uri.raw}: no objects under gs://{uri.bucket}/{prefix}")
        return generations

    def _download_blob(self, blob: Any, target: Path) -> None:
        with partial_file(target) as partial:
            blob.download_to_filename(
                str(partial), retry=self._retry, checksum="auto", timeout=self._timeout
            )

    def _not_found(self, client: Any, uri: ModelURI) -> StorageNotFoundError:
        from google.api_core import exceptions as gexc

        try:
            bucket = client.bucket(uri.bucket)
            bucket_exists = bool(bucket.exists(retry=self._retry, timeout=self._timeout))
        except gexc.GoogleAPIError:
            bucket_exists = True  # cannot tell; report the object
        if not bucket_exists:
            return StorageNotFoundError(f"{uri.raw}: bucket '{uri.bucket}' does not exist")
        pinned = f" at generation {uri.generation}" if uri.generation is not None else ""
        return StorageNotFoundError(f"{uri.raw}: no such object{pinned}")

    def _auth_message(self, uri: ModelURI, status: int) -> str:
        hint = (
            "give the pod a Kubernetes service account bound to a Google service account "
            "(Workload Identity) or set GOOGLE_APPLICATION_CREDENTIALS"
        )
        if status == 401:
            return f"{uri.raw}: no usable credentials (401); {hint}"
        message = (
            f"{uri.raw}: permission denied (403); grant the serving identity "
            f"roles/storage.objectViewer on bucket '{uri.bucket}'"
        )
        if self._anonymous:
            message += f" (the request was anonymous: no credentials were found; {hint})"
        return message
