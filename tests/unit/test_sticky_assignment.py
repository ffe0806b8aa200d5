"""Sticky assignment of callers to an experiment's arms (``bandit.sticky``): pure, no server.

Covers: the same key gives the same arm in another process (another hash seed); each arm's
share of 20,000 keys is its weight's within 2 points; over 100,000 keys a weight change moves
at most the share that must move (the total variation between the old and new shares) plus
1 point, and only towards a raised arm or away from a lowered one; adding an arm takes keys
only for it; reordering the arms moves none; without a key the fixed policy goes by weight.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from predictor.bandit.policies import ArmStats, choose, selection_probabilities
from predictor.bandit.sticky import sticky_arm

pytestmark = pytest.mark.timeout(120)

VERSIONS = ["1.0.0", "1.1.0", "2.0.0"]


def assign(versions: list[str], weights: list[float], keys: range) -> list[str]:
    return [versions[sticky_arm("taxi", versions, weights, f"user-{k}")] for k in keys]


def shares(weights: list[float]) -> np.ndarray:
    return np.asarray(weights, dtype=float) / sum(weights)


def test_the_same_key_gives_the_same_arm_in_another_process() -> None:
    here = assign(VERSIONS, [50, 30, 20], range(2000))
    script = (
        "import json; from predictor.bandit.sticky import sticky_arm; "
        "v = ['1.0.0', '1.1.0', '2.0.0']; "
        "print(json.dumps([v[sticky_arm('taxi', v, [50, 30, 20], f'user-{k}')] "
        "for k in range(2000)]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    there = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60,
        check=True,
    )  # fmt: skip
    assert json.loads(there.stdout) == here


@pytest.mark.parametrize("weights", [[90, 10, 0], [50, 30, 20], [1, 1, 1]])
def test_each_arm_takes_its_weight_share_of_the_keys(weights: list[float]) -> None:
    counts = Counter(assign(VERSIONS, weights, range(20_000)))
    for version, share in zip(VERSIONS, shares(weights), strict=True):
        assert abs(counts[version] / 20_000 - share) <= 0.02, (version, counts)
    if weights[2] == 0:
        assert counts["2.0.0"] == 0


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ([90, 10, 0], [80, 20, 0]),  # two arms: any change
        ([90, 10, 0], [50, 50, 0]),
        ([50, 30, 20], [50, 30, 40]),  # one weight raised
        ([50, 30, 20], [50, 10, 20]),  # one weight lowered
        ([50, 30, 20], [50, 30, 0]),  # an arm stopped
    ],
)
def test_a_weight_change_moves_only_the_share_that_must_move(
    before: list[float], after: list[float]
) -> None:
    keys = range(100_000)
    old, new = assign(VERSIONS, before, keys), assign(VERSIONS, after, keys)
    moved = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
    must_move = 0.5 * float(np.abs(shares(before) - shares(after)).sum())
    assert len(moved) / len(keys) <= must_move + 0.01
    assert len(moved) / len(keys) >= must_move - 0.01  # and it does move them
    changed = [i for i in range(3) if before[i] != after[i]]
    if len(changed) == 1:  # keys move only to a raised arm, or only from a lowered one
        arm = VERSIONS[changed[0]]
        raised = after[changed[0]] > before[changed[0]]
        assert all((b if raised else a) == arm for a, b in moved)


def test_adding_an_arm_takes_keys_only_for_it_and_reordering_moves_none() -> None:
    keys = range(20_000)
    two = assign(VERSIONS[:2], [50, 50], keys)
    three = assign(VERSIONS, [50, 50, 25], keys)
    assert {b for a, b in zip(two, three, strict=True) if a != b} == {"2.0.0"}
    reordered = assign(VERSIONS[::-1], [25, 50, 50], keys)
    assert reordered == three


def test_without_a_key_the_fixed_policy_goes_by_weight() -> None:
    rng = np.random.default_rng(3)
    arms = [ArmStats(feedbacks=100, rewards=90.0), ArmStats(feedbacks=100, rewards=10.0)]
    picks = Counter(choose("fixed", arms, rng, weights=[20, 80]) for _ in range(20_000))
    assert abs(picks[1] / 20_000 - 0.8) <= 0.02  # feedback changes nothing: the shares are fixed
    assert selection_probabilities("fixed", arms, rng, weights=[20, 80]) == [0.2, 0.8]


def test_no_arm_with_weight_takes_no_key() -> None:
    with pytest.raises(ValueError, match="every weight is 0"):
        sticky_arm("taxi", VERSIONS[:2], [0, 0], "user-1")
