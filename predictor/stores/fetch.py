"""Fetching a model artifact: download what a URI names (or use a local path), find the file.

This module owns where a model's bytes come from and nothing else: it never unpickles. The store
for the URI's scheme (``stores.base``) downloads; its adapter is imported only when a URI of its
scheme is served. Every failure becomes one ``StorageError`` whose message names the URI and
says what to do.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from predictor.errors import DigestMismatchError, ModelFileError, StorageNotFoundError
from predictor.stores.base import bucket_store
from predictor.stores.files import sha256_file
from predictor.stores.uris import MODEL_SUFFIXES, ModelURI, parse_model_uri

logger = logging.getLogger(__name__)


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
        if not self.generations:
            return None
        return self.generations.get(self.model_file.relative_to(self.root).as_posix())


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


def fetch(uri: ModelURI | str, *, download_dir: Path | None, deadline_s: float) -> Fetched:
    """Bring what ``uri`` names onto local disk (a no-op for local paths).

    Raises:
        StorageError: it could not be fetched (the subclass says why).
    """
    if isinstance(uri, str):
        uri = parse_model_uri(uri)
    if uri.scheme == "file":
        # Resolved once, so that every path under it (a bundle's files are resolved to check
        # they stay inside) is under it: `..`, symlinks and relative paths serve alike.
        target = Path(uri.path).resolve()
        if not target.exists():
            raise StorageNotFoundError(f"no such file or folder: {target}")
        return Fetched(source=uri, target=target)
    base = download_dir if download_dir is not None else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="model-", dir=base))
    started = time.monotonic()
    if uri.scheme == "models":
        from predictor.stores.mlflow import MLflowRegistry  # only models:/ needs MLflow

        registry = MLflowRegistry(deadline_s=deadline_s).download(uri, folder)
        logger.info("fetched %s in %.2fs", uri.raw, time.monotonic() - started)
        return Fetched(source=uri, target=folder, registry=registry)
    generations = bucket_store(uri.scheme, deadline_s=deadline_s).download(uri, folder)
    names = list(generations)
    logger.info(
        "fetched %s (%d object(s)) in %.2fs", uri.raw, len(names), time.monotonic() - started
    )
    pinned = {k: v for k, v in generations.items() if v is not None}
    if uri.is_prefix:
        return Fetched(source=uri, target=folder, generations=pinned)
    return Fetched(source=uri, target=folder / names[0], generations=pinned)


def model_folder(folder: Path, markers: tuple[str, ...]) -> Path:
    """The folder that holds the model: ``folder``, or the one version a registry folder holds.

    ``markers``: file names that make a folder a model's (a bundle's manifest, MLflow's MLmodel),
    besides a model file.

    KServe's storage initializer copies what ``storageUri`` names into ``/mnt/models``: a bundle,
    a bare model file, or a registry prefix whose one model has one version
    (``<name>/<version>/``). A folder with neither a manifest nor a model file, and exactly one
    subfolder, is followed down (a few levels at most).
    """
    current = folder
    for _ in range(3):
        entries = [p for p in current.iterdir() if not p.name.startswith(".")]
        if any(
            p.is_file() and (p.name in markers or p.name.endswith(MODEL_SUFFIXES)) for p in entries
        ):
            return current
        subfolders = [p for p in entries if p.is_dir()]
        if len(subfolders) != 1:
            return current  # find_model_file says what is (not) there
        current = subfolders[0]
    return current


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


def verify_digest(artifact: FetchedModel, expected: str | None, *, required: bool) -> None:
    """Refuse the artifact when its pinned sha256 does not match, or none is but one is required.

    Raises:
        DigestMismatchError: naming both digests, or that none was pinned.
    """
    if expected is None and required:
        raise DigestMismatchError(
            f"{artifact.source.raw}: PREDICTOR_REQUIRE_DIGEST is on, but no "
            "PREDICTOR_MODEL_SHA256 is pinned"
        )
    if expected is None:
        return
    if artifact.sha256 != expected:
        raise DigestMismatchError(
            f"{artifact.source.raw}: sha256 of {artifact.model_file.name} is {artifact.sha256}, "
            f"but the deployer pinned {expected}; refusing to unpickle it"
        )
    logger.info("sha256 verified: %s", expected)
