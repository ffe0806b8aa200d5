"""The prediction log's files on their way to a bucket: kept on disk until uploaded, retried.

A closed log file joins the spool, a local folder. One uploader thread sends the files oldest
first, create-only, and deletes each once the bucket holds it. A failed upload (each attempt
already retries within the store deadline) keeps the file and is tried again after a back-off
(1 s, doubling up to 60 s), so a store that is down for an hour loses nothing that fits on disk.

The spool is bounded (``max_bytes``): when a new file would pass the bound, the oldest files are
dropped, and ``predictor_prediction_log_records_dropped_total`` counts their records; nothing is
lost without being counted and logged. At shutdown the uploader has a few seconds to finish; what
is left stays in the folder, which the next process on the same disk sends first.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from predictor.errors import StorageError
from predictor.metrics.series import (
    PREDICTION_LOG_DROPPED,
    PREDICTION_LOG_SPOOLED,
    PREDICTION_LOG_UPLOAD_FAILURES,
)
from predictor.stores.base import BucketStore

logger = logging.getLogger(__name__)

FIRST_RETRY_S = 1.0
MOST_RETRY_S = 60.0


class UploadSpool:
    """Closed log files waiting for their upload to ``where`` (``bucket``/``prefix``)."""

    def __init__(
        self,
        store: BucketStore,
        *,
        bucket: str,
        prefix: str,
        where: str,
        folder: Path,
        max_bytes: int,
    ) -> None:
        self._store, self._bucket, self._prefix, self._where = store, bucket, prefix, where
        self.folder = folder
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._queue = left_behind(folder)
        self._uploading: Path | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._work, name="log-upload", daemon=True)
        self._thread.start()
        self._measure()

    def add(self, path: Path) -> None:
        """A closed log file, to upload; the oldest files make room when the spool is full."""
        with self._lock:
            self._queue.append(path)
            self._make_room()
        self._measure()
        self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Give the uploader ``timeout`` seconds to send what is left, then stop it."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        with self._lock:
            left = list(self._queue)
        if left:
            logger.error(
                "prediction log: %d file(s) not uploaded to %s yet, kept in %s",
                len(left),
                self._where,
                self.folder,
            )

    def _make_room(self) -> None:
        sizes = {p: _size(p) for p in self._queue}
        total = sum(sizes.values())
        while total > self.max_bytes and len(self._queue) > 1:
            oldest = next(p for p in self._queue if p != self._uploading)
            if oldest == self._queue[-1]:
                break  # the newest is kept whole, even alone over the bound
            self._queue.remove(oldest)
            records = _lines(oldest)
            oldest.unlink(missing_ok=True)
            total -= sizes[oldest]
            PREDICTION_LOG_DROPPED.inc(records)
            logger.error(
                "prediction log: spool over %d MB; dropped %s (%d records) before it was uploaded",
                self.max_bytes // (1024 * 1024),
                oldest.name,
                records,
            )

    def _work(self) -> None:
        wait = FIRST_RETRY_S
        while True:
            with self._lock:
                path = self._queue[0] if self._queue else None
                self._uploading = path
            if path is None:
                if self._stopping.is_set():
                    return
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            if self._upload(path):
                wait = FIRST_RETRY_S
                continue
            if self._stopping.is_set():
                return
            self._stopping.wait(wait)  # new files do not cut a back-off short; a stop does
            wait = min(wait * 2, MOST_RETRY_S)

    def _upload(self, path: Path) -> bool:
        name = self._prefix + path.name
        try:
            created = self._store.upload_new(path, self._bucket, name)
            if not created and not self._store.same_content(path, self._bucket, name):
                kept = path.with_suffix(".conflict")
                path.rename(kept)
                logger.error("%s%s exists with other content; this file was kept as %s",
                             self._where, name, kept)  # fmt: skip
        except (StorageError, OSError) as e:
            PREDICTION_LOG_UPLOAD_FAILURES.inc()
            logger.warning("prediction log upload of %s failed, will retry: %s", path.name, e)
            return False
        with self._lock:
            if path in self._queue:
                self._queue.remove(path)
            self._uploading = None
        path.unlink(missing_ok=True)
        self._measure()
        return True

    def _measure(self) -> None:
        with self._lock:
            PREDICTION_LOG_SPOOLED.set(sum(_size(p) for p in self._queue))


def left_behind(folder: Path) -> list[Path]:
    """Log files an earlier process on this disk wrote and did not upload, oldest first.

    A file is another live process's (it may still be writing it) when the process id in its
    name is alive and not ours: a restarted container often gets the same id as before.
    """
    found = []
    for path in folder.glob("predictions-*.jsonl"):
        pid = path.stem.split("-")[-2]
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            found.append(path)
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _lines(path: Path) -> int:
    count = 0
    try:
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                count += chunk.count(b"\n")
    except OSError:
        pass
    return count
