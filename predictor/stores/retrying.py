"""Retrying a store's transient failures with backoff, within one total deadline.

Each store adapter turns its client's errors into ``StorageError`` (final) or ``Transient``
(worth another try); ``within_deadline`` retries the latter, doubling the pause from 0.25 s up to
8 s, and ends with one ``StorageError`` that names the store and the last failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from predictor.errors import StorageError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Transient(Exception):  # noqa: N818 (a signal between adapter and loop, not an error)
    """A failure worth another try; raised ``from`` the client's error."""


def within_deadline(work: Callable[[], T], *, deadline_s: float, uri: str, store: str) -> T:
    """``work()``, again after each ``Transient`` until ``deadline_s`` has passed.

    Raises:
        StorageError: still failing at the deadline (or whatever ``work`` raised that is final).
    """
    deadline = time.monotonic() + deadline_s
    delay = 0.25
    while True:
        try:
            return work()
        except Transient as e:
            failure: BaseException = e.__cause__ or e
        if time.monotonic() + delay > deadline:
            raise StorageError(
                f"{uri}: {store} still failing after retrying for {deadline_s:.0f}s "
                f"({one_line(failure)})"
            ) from failure
        logger.info("%s %s: %s; retrying in %.2fs", store, uri, one_line(failure), delay)
        time.sleep(delay)
        delay = min(delay * 2, 8.0)


def one_line(error: BaseException) -> str:
    """An error's text on one line, at most 300 characters (its type when it has no text)."""
    text = " ".join(str(error).split())
    return text[:300] if text else type(error).__name__
