"""How many bytes a loaded model holds, measured once at load: the size of its pickled state.

Python cannot tell the memory an object holds: scikit-learn's trees keep their nodes in C
arrays that ``sys.getsizeof`` and a walk of references do not see. Their pickled state does
hold them, byte for byte (as numpy arrays), so the length of a fresh pickle stream, counted
without keeping it, stands for the model's memory. The estimator is pickled together with the
engine that answers for it (a compiled fast path holds arrays of its own), each object once.
It does not count the interpreter's per-object overhead, nor what ONNX Runtime holds in C++;
``bench/RESULTS.md`` compares it with the process's resident memory.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class _Counted:
    """A file that keeps nothing and counts the bytes written to it."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        self.size += size
        return size


def pickled_size(value: Any) -> int:
    """The length of ``value``'s pickle stream (highest protocol), counted, not kept."""
    counted = _Counted()
    pickle.Pickler(counted, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return counted.size


def model_bytes(served: Iterable[tuple[Any, Path]]) -> int:
    """The bytes of what a model serves with; a file's size where it cannot be pickled.

    ``served``: each version's objects (its estimator and engine) with the file it was loaded
    from.
    """
    total = 0
    for objects, path in served:
        try:
            total += pickled_size(objects)
        except Exception:  # noqa: BLE001 - any pickling failure: fall back to the file
            logger.debug("cannot pickle the estimator to measure it; counting its file")
            total += path.stat().st_size
    return total
