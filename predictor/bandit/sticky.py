"""Which arm a caller keeps: weighted rendezvous hashing of a key (a user id); pure.

Each arm draws, for a key, a number from the key's hash alone: ``-ln(u) / weight`` with ``u``
uniform in (0, 1) from blake2b of (model, arm version, key). The arm with the smallest draw
takes the key. So:

- the same key gives the same arm in every process and after restarts, with no shared state;
- an arm takes a share of the keys equal to its share of the weights (the draws are
  exponential races);
- changing one arm's weight moves only keys to it (raised) or from it (lowered), and adding or
  removing an arm moves only the keys it takes or gave: the share that must move, not more.
  Between two arms any change of weights moves exactly the difference.

Arms are named by version, not position: reordering the list moves no key.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

_SCALE = 2.0**64


def unit_draw(model: str, version: str, key: str) -> float:
    """A number in (0, 1), uniform over keys, the same for the same (model, version, key)."""
    digest = hashlib.blake2b(
        f"{model}\0{version}\0{key}".encode(), digest_size=8, person=b"predictor-ab"
    ).digest()
    return (int.from_bytes(digest, "big") + 0.5) / _SCALE


def sticky_arm(model: str, versions: Sequence[str], weights: Sequence[float], key: str) -> int:
    """The index of the arm that keeps ``key``: arms at weight 0 take none."""
    best, best_draw = -1, math.inf
    for index, (version, weight) in enumerate(zip(versions, weights, strict=True)):
        if weight <= 0:
            continue
        draw = -math.log(unit_draw(model, version, key)) / weight
        if draw < best_draw:
            best, best_draw = index, draw
    if best < 0:
        raise ValueError("every weight is 0; at least one arm must take keys")
    return best
