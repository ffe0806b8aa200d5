"""Fetching a model artifact: parse the URI, download from GCS or use a local path, find the file.

This module owns where bytes come from and nothing else: it never unpickles. GCS goes through
``google-cloud-storage`` (Application Default Credentials, which covers Workload Identity;
anonymous access when there are none; ``STORAGE_EMULATOR_HOST`` is honoured by the client), with
transient errors retried with backoff inside a total deadline. Every failure becomes one
``StorageError`` whose message names the URI and says what to do.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from predictor.errors import (
    ModelFileError,
    StorageAuthError,
    StorageError,
    StorageNotFoundError,
    UnsupportedURIError,
)

logger = logging.getLogger(__name__)

MODEL_SUFFIXES = (".joblib", ".pkl", ".pickle")
"""File endings we load with joblib; a folder must hold exactly one such file."""

PINNED_IN_PREFIX = "model.json"
"""On a gs:// prefix, ``#<generation>`` pins this object (a bundle's manifest, which pins the rest
by sha256)."""


@dataclass(frozen=True)
class ModelURI:
    """A parsed model location: ``gs://bucket/object``, ``gs://bucket/prefix/`` or a local path."""

    raw: str
    scheme: str
    """``gs`` or ``file``."""
    bucket: str = ""
    path: str = ""
    """Object name or prefix for ``gs``; absolute path for ``file``."""
    generation: int | None = None
    """GCS generation pinned with ``#<generation>``."""

    @property
    def is_prefix(self) -> bool:
        """True when a gs:// URI names a folder (prefix) rather than one object."""
        return self.scheme == "gs" and (
            self.path == "" or self.path.endswith("/") or not self.path.endswith(MODEL_SUFFIXES)
        )


@dataclass(frozen=True)
class Fetched:
    """What a URI names, brought onto local disk."""

    source: ModelURI
    target: Path
    """The local file or folder the URI names (a download folder for gs:// prefixes)."""
    generations: dict[str, int] = field(default_factory=dict)
    """GCS generation of each fetched object, by path relative to ``folder``."""

    @property
    def folder(self) -> Path:
        """The folder holding what was fetched."""
        return self.target if self.target.is_dir() else self.target.parent


@dataclass(frozen=True)
class FetchedModel:
    """A model file on local disk, with its digest and where it came from."""

    source: ModelURI
    root: Path
    """The local folder holding everything fetched (bundle files included)."""
    model_file: Path
    sha256: str
    generations: dict[str, int] = field(default_factory=dict)
    """GCS generation of each fetched object, by path relative to ``root``."""

    @property
    def generation(self) -> int | None:
        """GCS generation of the model file itself, when it came from GCS."""
        return self.generations.get(self.model_file.relative_to(self.root).as_posix())


def parse_model_uri(uri: str) -> ModelURI:
    """Parse and check a model URI; refuse any scheme we do not serve from.

    Raises:
        UnsupportedURIError: the scheme or the shape of the URI is not one we take.
    """
    text = uri.strip()
    if not text:
        raise UnsupportedURIError("model URI is empty; expected gs://bucket/path or a local path")
    parsed = urlparse(text)
    if parsed.scheme == "gs":
        if not parsed.netloc:
            raise UnsupportedURIError(f"{uri!r} names no bucket; expected gs://bucket/path")
        generation = None
        if parsed.fragment:
            if not parsed.fragment.isdigit():
                raise UnsupportedURIError(
                    f"{uri!r}: expected '#<generation>' to be a number, got {parsed.fragment!r}"
                )
            generation = int(parsed.fragment)
        return ModelURI(
            raw=text,
            scheme="gs",
            bucket=parsed.netloc,
            path=parsed.path.lstrip("/"),
            generation=generation,
        )
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise UnsupportedURIError(f"{uri!r}: file:// URIs must be absolute (file:///path)")
        return ModelURI(raw=text, scheme="file", path=unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return ModelURI(raw=text, scheme="file", path=str(Path(text).expanduser().absolute()))
    raise UnsupportedURIError(
        f"unsupported model URI scheme {parsed.scheme + '://'!r} in {uri!r}; "
        "expected gs://, file:// or a local path"
    )


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_model_file(location: Path) -> Path:
    """Return the model file at ``location``: the file itself, or the one model file in a folder.

    Raises:
        ModelFileError: no model file, more than one, or a file with another ending.
    """
    if location.is_file():
        if not location.name.endswith(MODEL_SUFFIXES):
            raise ModelFileError(
                f"{location} is not a model file; expected a name ending in "
                f"{', '.join(MODEL_SUFFIXES)}"
            )
        return location
    if not location.is_dir():
        raise StorageNotFoundError(f"no such file or folder: {location}")
    found = sorted(p for p in location.iterdir() if p.is_file() and p.name.endswith(MODEL_SUFFIXES))
    if len(found) == 1:
        return found[0]
    if not found:
        present = sorted(p.name for p in location.iterdir())[:10]
        raise ModelFileError(
            f"no model file ({', '.join(MODEL_SUFFIXES)}) in {location}; "
            f"found: {', '.join(present) or 'nothing'}"
        )
    raise ModelFileError(
        f"expected exactly one model file in {location}, found {len(found)}: "
        f"{', '.join(p.name for p in found)}"
    )


def fetch(uri: ModelURI, *, download_dir: Path | None, deadline_s: float) -> Fetched:
    """Bring what ``uri`` names onto local disk (a no-op for local paths).

    Raises:
        StorageError: it could not be fetched (the subclass says why).
    """
    if uri.scheme == "file":
        target = Path(uri.path)
        if not target.exists():
            raise StorageNotFoundError(f"no such file or folder: {target}")
        return Fetched(source=uri, target=target)
    base = download_dir if download_dir is not None else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="model-", dir=base))
    started = time.monotonic()
    generations = GCSFetcher(deadline_s=deadline_s).download(uri, folder)
    logger.info(
        "fetched %s (%d object(s)) in %.2fs", uri.raw, len(generations), time.monotonic() - started
    )
    if uri.is_prefix:
        return Fetched(source=uri, target=folder, generations=generations)
    return Fetched(source=uri, target=folder / next(iter(generations)), generations=generations)


def model_at(fetched: Fetched, model_file: Path, sha256: str | None = None) -> FetchedModel:
    """Describe the model file chosen among what was fetched, hashing it unless told its digest."""
    return FetchedModel(
        source=fetched.source,
        root=fetched.folder,
        model_file=model_file,
        sha256=sha256 if sha256 is not None else sha256_file(model_file),
        generations=fetched.generations,
    )


def fetch_model(uri: ModelURI, *, download_dir: Path | None, deadline_s: float) -> FetchedModel:
    """Fetch a bare model (no bundle manifest): the file named, or the one model file in a folder.

    Raises:
        StorageError: the artifact could not be fetched (the subclass says why).
        ModelFileError: what was fetched holds no single model file.
    """
    fetched = fetch(uri, download_dir=download_dir, deadline_s=deadline_s)
    return model_at(fetched, find_model_file(fetched.target))


class GCSFetcher:
    """Thin adapter over google-cloud-storage that turns its errors into ``StorageError``."""

    def __init__(self, *, deadline_s: float) -> None:
        from google.cloud.storage.retry import DEFAULT_RETRY

        self._retry = DEFAULT_RETRY.with_delay(initial=0.25, maximum=8.0).with_timeout(deadline_s)
        self._deadline_s = deadline_s
        # One slow call must not outlast the whole budget: each call gets at most the deadline.
        self._timeout = min(60.0, deadline_s)
        self._anonymous = False

    def _client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.auth.exceptions import DefaultCredentialsError
        from google.cloud import storage

        try:
            client = storage.Client()
        except DefaultCredentialsError:
            logger.info("no Application Default Credentials found; using anonymous GCS access")
            client = storage.Client.create_anonymous_client()
        self._anonymous = isinstance(getattr(client, "_credentials", None), AnonymousCredentials)
        return client

    def download(self, uri: ModelURI, dest: Path) -> dict[str, int]:
        """Download one object, or every object under a prefix, into ``dest``.

        Returns:
            The generation of each downloaded object, by its path relative to ``dest``.
        """
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc
        from google.cloud.storage.exceptions import DataCorruption

        try:
            client = self._client()
            if uri.is_prefix:
                return self._download_prefix(client, uri, dest)
            return self._download_object(client, uri, dest)
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
                f"({_one_line(e.cause or e)})"
            ) from e
        except (gexc.GoogleAPIError, auth_exc.GoogleAuthError, OSError) as e:
            raise StorageError(f"{uri.raw}: GCS request failed: {_one_line(e)}") from e

    def _download_object(self, client: Any, uri: ModelURI, dest: Path) -> dict[str, int]:
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

    def _download_prefix(self, client: Any, uri: ModelURI, dest: Path) -> dict[str, int]:
        prefix = uri.path if uri.path == "" or uri.path.endswith("/") else uri.path + "/"
        generations: dict[str, int] = {}
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
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        try:
            blob.download_to_filename(
                str(partial), retry=self._retry, checksum="auto", timeout=self._timeout
            )
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)

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


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] if text else type(error).__name__
