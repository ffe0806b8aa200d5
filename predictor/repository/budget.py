"""How many models, and how many bytes of them, a process keeps loaded; who makes room.

Pure: given the models held (least recently used first) and what a load adds, ``victims`` names
the idle models to unload, or None when room cannot be made because the rest are in use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """The most models, and the most bytes, held at once (None: no bound)."""

    max_models: int | None = None
    max_bytes: int | None = None

    def fits(self, models: int, size: int) -> bool:
        """Whether ``models`` models of ``size`` bytes in all are within the budget."""
        if self.max_models is not None and models > self.max_models:
            return False
        return self.max_bytes is None or size <= self.max_bytes

    def admits(self, size: int) -> bool:
        """Whether one model of ``size`` bytes could ever be held (alone, at worst)."""
        return self.max_bytes is None or size <= self.max_bytes


@dataclass(frozen=True)
class Held:
    """A model held by the process, as the budget sees it."""

    name: str
    size: int
    """Its bytes (0 while it loads: not yet measured)."""
    busy: bool
    """Requests are in flight on it, or it is still loading: it cannot be unloaded now."""


def victims(budget: Budget, held: Sequence[Held], *, models: int, size: int) -> list[str] | None:
    """The models to unload, least recently used first, so that ``models`` more fit in ``size``.

    ``held`` is in order of last use, least recent first. Busy models are passed over.

    Returns:
        The names to unload (empty when everything fits already), or None when even unloading
        every idle model would not make room.
    """
    count = len(held) + models
    total = sum(h.size for h in held) + size
    chosen: list[str] = []
    for model in held:
        if budget.fits(count, total):
            break
        if model.busy:
            continue
        chosen.append(model.name)
        count -= 1
        total -= model.size
    return chosen if budget.fits(count, total) else None
