"""Fetching a model artifact: parse the URI, download from GCS or use a local path, find the file.

This module owns where bytes come from and nothing else: it never unpickles. Downloads from
``gs://`` go through ``predictor.artifact.gcs`` (imported only when a gs:// URI is served);
every failure becomes one ``StorageError`` whose message names the URI and says what to do.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from predictor.errors import (
    ModelFileError,
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
    from predictor.artifact.gcs import GCSFetcher  # only gs:// URIs need the Google client

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
