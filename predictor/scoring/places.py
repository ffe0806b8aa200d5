"""Where batch scoring reads and writes: local paths, or any bucket store (``gs://``, ``s3://``).

Inputs are one file, a folder or prefix (every CSV, Parquet and JSON Lines file in it), or a glob
(``data/*.csv``, ``gs://bucket/day=*/part-*.parquet``, ``s3://bucket/in/*.csv``). Outputs are
written as parts, each recorded once it is complete (a local file renamed into place, or a
create-only upload), then joined. A rerun asks the destination which parts it holds and skips them.
"""

from __future__ import annotations

import errno
import fnmatch
import functools
import glob
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from typing_extensions import override

from predictor.errors import ScoringError
from predictor.scoring.tables import FORMATS, written_whole
from predictor.stores.base import BucketStore, bucket_store, is_bucket
from predictor.stores.uris import as_prefix, object_uri

StoreFor = Callable[[str], BucketStore]
"""The bucket store of a scheme (one per scheme for a run)."""


def stores_for(deadline_s: float) -> StoreFor:
    """One bucket store per scheme for a run, each retrying within ``deadline_s`` per call."""
    return functools.cache(lambda scheme: bucket_store(scheme, deadline_s=deadline_s))


GLOB_CHARS = "*?["


@dataclass(frozen=True)
class InputFile:
    """One input file: its name for the output, and where it is."""

    name: str
    """The file's name; the output of a folder run keeps it (``day1.csv`` to ``day1.csv``)."""
    location: str
    """A local path or ``<scheme>://bucket/object``."""


def split_bucket(uri: str) -> tuple[str, str, str]:
    """``<scheme>://bucket/path`` as (scheme, bucket, path).

    Raises:
        ScoringError: the URI names no bucket.
    """
    parsed = urlparse(uri)
    if not parsed.netloc:
        raise ScoringError(f"expected {parsed.scheme}://bucket/path")
    return parsed.scheme, parsed.netloc, parsed.path.lstrip("/")


def list_inputs(spec: str, stores: StoreFor) -> list[InputFile]:
    """The input files a path, folder, prefix or glob names, in name order.

    Raises:
        ScoringError: it names no file in a format we read.
    """
    if is_bucket(spec):
        scheme, bucket, path = split_bucket(spec)
        pattern = path if any(c in path for c in GLOB_CHARS) else None
        prefix = path.split("*")[0].split("?")[0].split("[")[0] if pattern else path
        names = stores(scheme).list_names(bucket, prefix)
        if pattern is not None:
            names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        elif not path.endswith(FORMATS):
            names = [n for n in names if "/" not in n[len(prefix.rstrip("/")) + 1 :]]
        else:
            names = [n for n in names if n == path]
        found = [InputFile(Path(n).name, f"{scheme}://{bucket}/{n}") for n in names]
    else:
        local = Path(spec).expanduser()
        if any(c in spec for c in GLOB_CHARS):
            paths = [Path(p) for p in sorted(glob.glob(str(local)))]
        elif local.is_dir():
            paths = sorted(p for p in local.iterdir() if p.is_file())
        else:
            paths = [local] if local.exists() else []
        found = [InputFile(p.name, str(p)) for p in paths]
    found = [f for f in found if f.name.lower().endswith(FORMATS) and not f.name.startswith(".")]
    if not found:
        raise ScoringError(
            f"no input files: {spec} names no {', '.join(FORMATS)} file (a file, a folder or "
            "prefix, or a glob)"
        )
    names = [f.name for f in found]
    if len(set(names)) != len(names):
        raise ScoringError("two input files have the same name; score them in separate runs")
    return found


def local_copy(item: InputFile, work: Path, stores: StoreFor) -> tuple[Path, str]:
    """A local path to read ``item`` from, and what tells its content from another's.

    A bucket object is downloaded into ``work``; its generation (GCS) or ETag (S3) tells it
    apart. A local file is told apart by its size and modification time.
    """
    if not is_bucket(item.location):
        path = Path(item.location)
        stat = path.stat()
        return path, f"{stat.st_size}:{stat.st_mtime_ns}"
    scheme, bucket, name = split_bucket(item.location)
    folder = work / "input"
    folder.mkdir(parents=True, exist_ok=True)
    token = stores(scheme).download_object(object_uri(scheme, bucket, name), folder)
    return folder / Path(name).name, token


class Destination(Protocol):
    """Where finished parts and joined outputs are recorded."""

    def has(self, name: str) -> bool:
        """Whether the joined output ``name`` exists already."""
        ...

    def parts(self, group: str) -> set[str]:
        """The names of the finished parts of ``group``."""
        ...

    def part_folder(self, group: str, work: Path) -> Path:
        """The local folder to write the parts of ``group`` in (``work`` is this run's own)."""
        ...

    def put_part(self, group: str, path: Path) -> None:
        """Record a finished part (a local file)."""
        ...

    def get_parts(self, group: str, names: list[str], into: Path) -> list[Path]:
        """Local copies of parts, in the order given."""
        ...

    def put(self, path: Path, name: str) -> str:
        """Record a joined output under ``name``; returns where it went."""
        ...

    def drop_parts(self, group: str) -> None:
        """Forget the parts of ``group`` once their output is recorded."""
        ...

    def tidy(self, group: str) -> None:
        """After a failed run: remove the part folders of ``group`` if they hold nothing."""
        ...


PARTS = "_parts"


class LocalFolder(Destination):
    """A local folder; parts live in ``<folder>/_parts/<group>/``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    @override
    def has(self, name: str) -> bool:
        return (self.root / name).exists()

    @override
    def parts(self, group: str) -> set[str]:
        folder = self.root / PARTS / group
        if not folder.is_dir():
            return set()
        return {p.name for p in folder.iterdir() if not p.name.startswith(".")}

    @override
    def part_folder(self, group: str, work: Path) -> Path:
        folder = self.root / PARTS / group
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @override
    def put_part(self, group: str, path: Path) -> None:
        pass  # written in place, by rename

    @override
    def get_parts(self, group: str, names: list[str], into: Path) -> list[Path]:
        return [self.root / PARTS / group / n for n in names]

    @override
    def put(self, path: Path, name: str) -> str:
        target = self.root / name
        if path == target:
            return str(target)
        try:
            path.replace(target)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            with written_whole(target) as partial:  # another disk: copied, then renamed there
                shutil.copyfile(path, partial)
            path.unlink()
        return str(target)

    @override
    def drop_parts(self, group: str) -> None:
        shutil.rmtree(self.root / PARTS / group, ignore_errors=True)
        self._remove_if_empty(self.root / PARTS)

    @override
    def tidy(self, group: str) -> None:
        self._remove_if_empty(self.root / PARTS / group)
        self._remove_if_empty(self.root / PARTS)

    @staticmethod
    def _remove_if_empty(folder: Path) -> None:
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty (kept parts, other groups), or already gone


class BucketPrefix(Destination):
    """A prefix in a bucket store; parts are objects under ``<prefix>/_parts/<group>/``."""

    def __init__(self, uri: str, store: BucketStore) -> None:
        self.scheme, self.bucket, path = split_bucket(uri)
        self.prefix = as_prefix(path)
        self.store = store

    def _name(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    @override
    def has(self, name: str) -> bool:
        return self._name(name) in self.store.list_names(self.bucket, self._name(name))

    @override
    def parts(self, group: str) -> set[str]:
        folder = self._name(PARTS, group) + "/"
        return {n[len(folder) :] for n in self.store.list_names(self.bucket, folder)}

    @override
    def part_folder(self, group: str, work: Path) -> Path:
        folder = work / PARTS / group
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @override
    def put_part(self, group: str, path: Path) -> None:
        # Create-only: a part another run recorded first is that run's identical work.
        self.store.upload_new(path, self.bucket, self._name(PARTS, group, path.name))

    @override
    def get_parts(self, group: str, names: list[str], into: Path) -> list[Path]:
        folder = into / PARTS / group
        folder.mkdir(parents=True, exist_ok=True)
        local = []
        for name in names:
            target = folder / name
            if not target.exists():
                uri = object_uri(self.scheme, self.bucket, self._name(PARTS, group, name))
                self.store.download_object(uri, folder)
            local.append(target)
        return local

    @override
    def put(self, path: Path, name: str) -> str:
        uri = f"{self.scheme}://{self.bucket}/{self._name(name)}"
        if not self.store.upload_new(path, self.bucket, self._name(name)):
            raise ScoringError(f"{uri} exists already; outputs are never overwritten")
        return uri

    @override
    def drop_parts(self, group: str) -> None:
        folder = self._name(PARTS, group) + "/"
        self.store.delete(self.bucket, self.store.list_names(self.bucket, folder))

    @override
    def tidy(self, group: str) -> None:
        pass  # a bucket has no folders: nothing is left where no part was written
