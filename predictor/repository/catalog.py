"""Which models a repository holds: the sub-folders of a local folder or of a bucket prefix.

Each sub-folder is one model, named by the folder. A local folder (KServe's ``/mnt/models``,
which its model agent fills while the server runs) is looked at live: a stat per unknown name.
A bucket prefix is listed at start and again, in the background, when a name it did not hold
is asked after ``refresh_s``; ``refresh()`` lists it at once (the repository index and load
API call it). Folder names that are not model names (``names.checked_name``) are left out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from predictor.errors import PredictorError, UnsupportedURIError
from predictor.repository.errors import InvalidModelNameError
from predictor.repository.names import checked_name
from predictor.stores.base import bucket_store, is_bucket
from predictor.stores.uris import as_prefix, parse_model_uri

logger = logging.getLogger(__name__)


class Catalog(Protocol):
    """The models a repository holds, and where each one lives."""

    location: str
    """The repository's URI, as given."""

    def uri_of(self, name: str) -> str:
        """Where model ``name`` lives (a folder, or a bucket prefix ending in ``/``)."""
        ...

    def holds(self, name: str) -> bool:
        """Whether the repository holds model ``name`` (cheap: no store call on this thread)."""
        ...

    def names(self) -> list[str]:
        """Every model the repository holds, in name order, as last seen."""
        ...

    def refresh(self) -> None:
        """Look at the repository again now (may call the store)."""
        ...


def is_model_name(name: str) -> bool:
    """Whether ``name`` may name a model of the repository (``names.checked_name``)."""
    try:
        checked_name(name)
    except InvalidModelNameError:
        return False
    return True


def model_names(candidates: set[str]) -> list[str]:
    """The candidates that are model names, in order (others are not served)."""
    return [name for name in sorted(candidates) if is_model_name(name)]


class FolderCatalog:
    """A local folder whose sub-folders are models, looked at live."""

    def __init__(self, folder: Path) -> None:
        self.location = str(folder)
        self.folder = folder

    def uri_of(self, name: str) -> str:
        """The model's folder."""
        return str(self.folder / name)

    def holds(self, name: str) -> bool:
        """Whether ``<folder>/<name>`` is a folder, for a model name (never for another path)."""
        return is_model_name(name) and (self.folder / name).is_dir()

    def names(self) -> list[str]:
        """The sub-folders that are model names."""
        if not self.folder.is_dir():
            return []
        return model_names({p.name for p in self.folder.iterdir() if p.is_dir()})

    def refresh(self) -> None:
        """Nothing: the folder is looked at live."""


class BucketCatalog:
    """A ``gs://`` or ``s3://`` prefix whose sub-prefixes are models, listed now and then."""

    def __init__(
        self, location: str, *, deadline_s: float, refresh_s: float, clock: Callable[[], float]
    ) -> None:
        self.location = as_prefix(location)
        self.uri = parse_model_uri(self.location)
        self.store = bucket_store(self.uri.scheme, deadline_s=deadline_s)
        self.refresh_s = refresh_s
        self.clock = clock
        self._names: frozenset[str] = frozenset()
        self._listed_at = float("-inf")
        self._refreshing = threading.Lock()

    def uri_of(self, name: str) -> str:
        """The model's prefix."""
        return f"{self.location}{name}/"

    def holds(self, name: str) -> bool:
        """Whether the last listing held ``name``; a stale listing is renewed in the background."""
        if name in self._names:
            return True
        if not is_model_name(name):
            return False
        if self.clock() - self._listed_at >= self.refresh_s and not self._refreshing.locked():
            threading.Thread(target=self._refresh_quietly, daemon=True).start()
        return False

    def names(self) -> list[str]:
        """The models of the last listing."""
        return sorted(self._names)

    def refresh(self) -> None:
        """List the prefix now.

        Raises:
            StorageError: the store cannot be listed.
        """
        with self._refreshing:
            prefix = self.uri.path
            found = {
                name[len(prefix) :].split("/", 1)[0]
                for name in self.store.list_names(self.uri.bucket, prefix)
                if "/" in name[len(prefix) :]
            }
            self._names = frozenset(model_names(found))
            self._listed_at = self.clock()

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except PredictorError as e:
            logger.warning("cannot list the model repository: %s", e)


def catalog_for(location: str, *, deadline_s: float, refresh_s: float) -> Catalog:
    """The catalog of the repository at ``location`` (a folder path, file://, gs:// or s3://).

    Raises:
        UnsupportedURIError: the location is not a folder or a bucket prefix.
        StorageError: a bucket cannot be listed.
    """
    if is_bucket(location):
        catalog = BucketCatalog(
            location, deadline_s=deadline_s, refresh_s=refresh_s, clock=time.monotonic
        )
        catalog.refresh()
        return catalog
    uri = parse_model_uri(location)
    if uri.scheme != "file":
        raise UnsupportedURIError(
            "a model repository is a folder, file://, gs:// or s3:// prefix; "
            f"{uri.scheme}:// holds one model, not a repository"
        )
    return FolderCatalog(Path(uri.path))
