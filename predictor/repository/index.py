"""The repository index (the v2 repository extension's ``POST /v2/repository/index``), pure.

Every model the repository holds, and every model loaded, with its state: ``READY`` (loaded,
with its version), ``LOADING``, or ``UNAVAILABLE`` with the reason (its last load failed within
the back-off period, or it is simply not loaded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

READY, LOADING, UNAVAILABLE = "READY", "LOADING", "UNAVAILABLE"
NOT_LOADED = "not loaded"


@dataclass(frozen=True)
class IndexEntry:
    """One model of the repository index."""

    name: str
    version: str
    state: str
    reason: str

    def document(self) -> dict[str, str]:
        """As the REST index lists it."""
        return {
            "name": self.name,
            "version": self.version,
            "state": self.state,
            "reason": self.reason,
        }


def index_entries(
    listed: Iterable[str],
    versions: Mapping[str, str | None],
    failures: Mapping[str, str],
) -> list[IndexEntry]:
    """The index, in name order.

    Args:
        listed: the models the repository holds.
        versions: each model held by the process: its version, None while it loads.
        failures: the reason of each model whose last load failed within the back-off period.
    """
    entries = []
    for name in sorted(set(listed) | set(versions)):
        if name in versions:
            version = versions[name]
            if version is None:
                entries.append(IndexEntry(name, "", LOADING, ""))
            else:
                entries.append(IndexEntry(name, version, READY, ""))
        else:
            entries.append(IndexEntry(name, "", UNAVAILABLE, failures.get(name, NOT_LOADED)))
    return entries
