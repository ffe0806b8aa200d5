"""The drift reference, its bins, the index and the sliding window (pure parts)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from predictor.drift.binning import FLOOR, assign, out_of_range, psi, unseen
from predictor.drift.reference import BINS, Reference, build_reference, feature_reference
from predictor.drift.window import BinWindow

pytestmark = pytest.mark.timeout(30)


def test_a_numeric_reference_has_quantile_bins_of_equal_share() -> None:
    values = np.random.default_rng(0).normal(size=10_000)
    values[:100] = np.nan
    reference = feature_reference("x", values, "number")
    assert len(reference.edges) == BINS - 1
    assert reference.shares[-1] == pytest.approx(0.01)  # the missing bin
    assert all(s == pytest.approx(0.099, abs=1e-3) for s in reference.shares[:-1])
    assert sum(reference.shares) == pytest.approx(1.0)
    assert reference.minimum == pytest.approx(np.nanmin(values))


def test_a_value_on_an_edge_falls_in_the_bin_below_and_missing_in_the_last() -> None:
    reference = feature_reference("x", np.arange(1.0, 11.0), "number")
    edges = reference.edges
    found = assign(reference, np.array([edges[0], edges[0] + 1e-9, -1e9, 1e9, np.nan]))
    assert found.tolist() == [0, 1, 0, len(edges), len(edges) + 1]


def test_strings_keep_their_top_categories_and_every_one_seen() -> None:
    values = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20 + [None] * 10, dtype=object)
    reference = feature_reference("s", values, "string")
    assert reference.categories == ("a", "b", "c")
    assert reference.shares == pytest.approx((50 / 110, 30 / 110, 20 / 110, 0.0, 10 / 110))
    live = np.array(["a", "z", None, "", "c"], dtype=object)
    assert assign(reference, live).tolist() == [0, 3, 4, 4, 2]  # z is "other"; "" is missing
    assert unseen(reference, live) == 1
    assert out_of_range(reference, live) == 0


def test_the_index_is_the_textbook_formula_with_floored_shares() -> None:
    expected = np.array([0.5, 0.5, 0.0])
    counts = np.array([30, 70, 0])
    manual = sum(
        (a - e) * math.log(a / e) for a, e in zip([0.3, 0.7, FLOOR], [0.5, 0.5, FLOOR], strict=True)
    )
    assert psi(expected, counts) == pytest.approx(manual)
    assert psi(expected, np.array([50, 50, 0])) == 0.0
    assert psi(expected, np.zeros(3, dtype=int)) == 0.0


def test_the_window_keeps_the_last_rows_only() -> None:
    window = BinWindow(bins=3, size=4)
    window.add(np.array([0, 0, 0]))
    window.add(np.array([1, 2]))
    assert window.counts.tolist() == [2, 1, 1] and window.rows == 4
    window.add(np.array([2, 2, 2, 2, 2, 2]))
    assert window.counts.tolist() == [0, 0, 4]
    assert window.missing_ratio() == 1.0  # the last bin is the missing one
    unbounded = BinWindow(bins=3, size=None)
    unbounded.add(np.array([0, 1, 1]))
    unbounded.add(np.array([2] * 10))
    assert unbounded.counts.tolist() == [1, 2, 10]


def test_a_reference_survives_its_document() -> None:
    rng = np.random.default_rng(1)
    reference = build_reference(
        [
            ("x", rng.normal(size=300), "number"),
            ("s", rng.choice(["a", "b"], 300).astype(object), "string"),
        ],
        rng.choice([0, 1], 300).astype(object),
        classifier=True,
    )
    assert Reference.from_document(reference.document()) == reference
    assert reference.prediction is not None
    assert sorted(reference.prediction.categories) == ["0", "1"]  # most frequent first
