"""The prediction log: JSON Lines of shadowed rows, in files rotated by size or age.

Records are written in batches (one write per batch the shadow worker handles) to
``predictions-<UTC time>-<pid>-<n>.jsonl``. A file is closed when it reaches ``max_bytes`` or
``max_seconds``, and at shutdown. In a local folder the open file is readable as it grows; under
a bucket prefix (``gs://``, ``s3://``) it is written locally and handed, when closed, to the
upload spool (``shadow.spool``): uploaded whole, create-only, as ``publish`` writes, retried while
the store is down, and bounded on disk by ``spool_bytes`` (what it drops is counted).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from predictor.shadow.spool import UploadSpool
from predictor.stores.base import bucket_store, is_bucket
from predictor.stores.uris import as_prefix

logger = logging.getLogger(__name__)


class PredictionLog:
    """Appends records to rotated JSON Lines files in a folder or under a bucket prefix."""

    def __init__(
        self,
        target: str,
        *,
        max_bytes: int,
        max_seconds: float,
        deadline_s: float = 120.0,
        spool_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self.target = target
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self._spool: UploadSpool | None = None
        if is_bucket(target):
            scheme, _, rest = target.partition("://")
            bucket, _, prefix = rest.partition("/")
            key = hashlib.sha256(target.encode()).hexdigest()[:12]
            self._folder = Path(tempfile.gettempdir()) / f"predictor-log-{key}"
            self._folder.mkdir(parents=True, exist_ok=True)
            self._spool = UploadSpool(
                bucket_store(scheme, deadline_s=deadline_s),
                bucket=bucket,
                prefix=as_prefix(prefix),
                where=f"{scheme}://{bucket}/",
                folder=self._folder,
                max_bytes=spool_bytes,
            )
        else:
            self._folder = Path(target)
            self._folder.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._opened = 0.0
        self._count = 0

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records (one JSON object per line), rotating the file when it is due."""
        data = b"".join(
            orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)
            for r in records
        )
        if not data:
            return
        if self._file is not None and self._due():
            self.rotate()
        if self._file is None:
            self._open()
        assert self._file is not None
        self._file.write(data)
        self._file.flush()

    def _due(self) -> bool:
        assert self._file is not None
        too_old = time.monotonic() - self._opened >= self.max_seconds
        return too_old or self._file.tell() >= self.max_bytes

    def _open(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self._count += 1
        self._path = self._folder / f"predictions-{stamp}-{os.getpid()}-{self._count}.jsonl"
        self._file = self._path.open("ab")
        self._opened = time.monotonic()

    def rotate(self) -> None:
        """Close the open file (spooling it for upload, to a bucket); the next write opens one."""
        if self._file is None or self._path is None:
            return
        self._file.close()
        self._file = None
        if self._spool is not None:
            self._spool.add(self._path)

    def close(self, timeout: float = 5.0) -> None:
        """Close the open file; to a bucket, give the uploads ``timeout`` seconds to finish."""
        self.rotate()
        if self._spool is not None:
            self._spool.close(timeout)
