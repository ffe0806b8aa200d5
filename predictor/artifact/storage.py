"""Fetching a model artifact: parse the URI, download it or use a local path, find the file.

This module owns where bytes come from and nothing else: it never unpickles. Each store has its
adapter, imported only when a URI of its scheme is served: ``gs://`` (``artifact.gcs``),
``s3://`` (``artifact.s3``) and MLflow's ``models:/`` (``artifact.registry``). Every failure
becomes one ``StorageError`` whose message names the URI and says what to do.
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
    """A parsed model location: an object or prefix in a bucket, a registry model, a local path."""

    raw: str
    scheme: str
    """``gs``, ``s3``, ``models`` (an MLflow registry) or ``file``."""
    bucket: str = ""
    path: str = ""
    """Object name or prefix for ``gs`` and ``s3``; the registered model's name for ``models``;
    absolute path for ``file``."""
    generation: int | None = None
    """GCS generation pinned with ``#<generation>``."""
    version: str | None = None
    """The registry version (``models:/NAME/VERSION``)."""
    alias: str | None = None
    """The registry alias (``models:/NAME@ALIAS``), resolved to a version at fetch time."""

    @property
    def is_prefix(self) -> bool:
        """True when a bucket URI names a folder (prefix) rather than one object."""
        return self.scheme in ("gs", "s3") and (
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
    registry: dict[str, str] = field(default_factory=dict)
    """For a registry model: its name, the version served, the alias asked for, the run id."""

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
    registry: dict[str, str] = field(default_factory=dict)
    """For a registry model: its name, the version served, the alias asked for, the run id."""

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
        raise UnsupportedURIError(f"model URI is empty; expected {EXPECTED_URIS}")
    parsed = urlparse(text)
    if parsed.scheme in ("gs", "s3"):
        return _bucket_uri(uri, text)
    if parsed.scheme == "models":
        return _registry_uri(uri, text)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise UnsupportedURIError(f"{uri!r}: file:// URIs must be absolute (file:///path)")
        return ModelURI(raw=text, scheme="file", path=unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return ModelURI(raw=text, scheme="file", path=str(Path(text).expanduser().absolute()))
    raise UnsupportedURIError(
        f"unsupported model URI scheme {parsed.scheme + ':'!r} in {uri!r}; expected {EXPECTED_URIS}"
    )


EXPECTED_URIS = (
    "gs://bucket/path, s3://bucket/path, models:/NAME/VERSION, models:/NAME@ALIAS, "
    "file:///path or a local path"
)


def parse_destination(text: str) -> ModelURI:
    """Where ``publish`` writes: as ``parse_model_uri``, plus ``models:/NAME`` (a new version).

    Raises:
        UnsupportedURIError: the destination is not one publish can write to.
    """
    rest = text.strip()[len("models:") :].lstrip("/") if text.startswith("models:") else ""
    if rest and "/" not in rest and "@" not in rest:
        return ModelURI(raw=text.strip(), scheme="models", path=rest)
    target = parse_model_uri(text)
    if target.scheme == "models":
        raise UnsupportedURIError(
            f"{text!r}: the registry numbers versions itself; publish to models:/NAME"
        )
    return target


def _bucket_uri(uri: str, text: str) -> ModelURI:
    parsed = urlparse(text)
    scheme = parsed.scheme
    if not parsed.netloc:
        raise UnsupportedURIError(f"{uri!r} names no bucket; expected {scheme}://bucket/path")
    generation = None
    if parsed.fragment:
        if scheme != "gs" or not parsed.fragment.isdigit():
            raise UnsupportedURIError(
                f"{uri!r}: '#' pins a GCS generation and expects a number; "
                "pin an s3:// model by its digest (PREDICTOR_MODEL_SHA256)"
            )
        generation = int(parsed.fragment)
    return ModelURI(
        raw=text,
        scheme=scheme,
        bucket=parsed.netloc,
        path=parsed.path.lstrip("/"),
        generation=generation,
    )


def _registry_uri(uri: str, text: str) -> ModelURI:
    """``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` (MLflow's model registry)."""
    rest = text[len("models:") :].lstrip("/")
    shape = "expected models:/NAME/VERSION (a number) or models:/NAME@ALIAS"
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        if not name or not alias or "/" in alias:
            raise UnsupportedURIError(f"{uri!r}: {shape}")
        return ModelURI(raw=text, scheme="models", path=name, alias=alias)
    name, _, version = rest.rpartition("/")
    if not name or not version.isdigit():
        raise UnsupportedURIError(f"{uri!r}: {shape}")
    return ModelURI(raw=text, scheme="models", path=name, version=version)


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
    if uri.scheme == "models":
        from predictor.artifact.registry import MLflowRegistry  # only models:/ needs MLflow

        registry = MLflowRegistry(deadline_s=deadline_s).download(uri, folder)
        logger.info("fetched %s in %.2fs", uri.raw, time.monotonic() - started)
        return Fetched(source=uri, target=folder, registry=registry)
    if uri.scheme == "s3":
        from predictor.artifact.s3 import S3Store  # only s3:// URIs need boto3

        names = S3Store(deadline_s=deadline_s).download(uri, folder)
        generations: dict[str, int] = {}
    else:
        from predictor.artifact.gcs import GCSFetcher  # only gs:// URIs need the Google client

        generations = GCSFetcher(deadline_s=deadline_s).download(uri, folder)
        names = list(generations)
    logger.info(
        "fetched %s (%d object(s)) in %.2fs", uri.raw, len(names), time.monotonic() - started
    )
    if uri.is_prefix:
        return Fetched(source=uri, target=folder, generations=generations)
    return Fetched(source=uri, target=folder / names[0], generations=generations)


def model_at(fetched: Fetched, model_file: Path, sha256: str | None = None) -> FetchedModel:
    """Describe the model file chosen among what was fetched, hashing it unless told its digest."""
    return FetchedModel(
        source=fetched.source,
        root=fetched.folder,
        model_file=model_file,
        sha256=sha256 if sha256 is not None else sha256_file(model_file),
        generations=fetched.generations,
        registry=fetched.registry,
    )


def fetch_model(uri: ModelURI, *, download_dir: Path | None, deadline_s: float) -> FetchedModel:
    """Fetch a bare model (no bundle manifest): the file named, or the one model file in a folder.

    Raises:
        StorageError: the artifact could not be fetched (the subclass says why).
        ModelFileError: what was fetched holds no single model file.
    """
    fetched = fetch(uri, download_dir=download_dir, deadline_s=deadline_s)
    return model_at(fetched, find_model_file(fetched.target))
