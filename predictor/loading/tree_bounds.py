"""Bounds checks on the trees a skops file built, before anything predicts with them.

scikit-learn walks a fitted tree by the node indices it stores (``left_child``, ``right_child``,
``feature``) without checking them. A skops file builds only trusted types, but a trusted tree
can still hold indices out of range, and predicting with it reads memory it must not (or
crashes the process). Every tree reachable from the model (``DecisionTree*``, the forests and
boosted ensembles, ``HistGradientBoosting*``'s predictors) is checked here, so such a file is
refused at load with one line. Pure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from predictor.errors import ModelFileError

MAX_DEPTH = 12
"""How deep the model's attributes are walked to find trees."""


def check_trees(model: Any, *, source: str) -> int:
    """Refuse ``model`` if one of its trees points outside itself; returns the trees checked.

    Raises:
        ModelFileError: naming the tree's class and what is out of range.
    """
    checked = 0
    for found in _reachable(model, 0, set()):
        kind = type(found).__name__
        if kind == "Tree" and type(found).__module__.startswith("sklearn.tree"):
            nodes = found.__getstate__()["nodes"]
            left, right, feature = (
                nodes[name].astype(np.int64) for name in ("left_child", "right_child", "feature")
            )
            _check(left, right, feature, int(found.node_count), int(found.n_features), -2,
                   source, kind)  # fmt: skip
            checked += 1
        elif kind == "TreePredictor":
            nodes = found.nodes
            leaf = nodes["is_leaf"].astype(bool)
            left, right, feature = (
                np.where(leaf, fill, nodes[name].astype(np.int64))
                for name, fill in (("left", -1), ("right", -1), ("feature_idx", -2))
            )
            _check(left, right, feature, len(nodes), None, -2, source, kind)
            checked += 1
    return checked


def _check(
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    count: int,
    n_features: int | None,
    leaf_feature: int,
    source: str,
    kind: str,
) -> None:
    for name, children in (("left child", left), ("right child", right)):
        inner = children[children != -1]
        if len(children) != count or (len(inner) and (inner.min() < 1 or inner.max() >= count)):
            raise ModelFileError(
                f"{source}: a {kind} has a {name} index outside its {count} nodes; refused"
            )
    used = feature[feature != leaf_feature]
    if len(used) and (used.min() < 0 or (n_features is not None and used.max() >= n_features)):
        raise ModelFileError(f"{source}: a {kind} splits on a feature it does not have; refused")


def _reachable(value: Any, depth: int, seen: set[int]) -> Iterator[Any]:
    if depth > MAX_DEPTH or id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, dict):
        for item in value.values():
            yield from _reachable(item, depth + 1, seen)
    elif isinstance(value, list | tuple) or (
        isinstance(value, np.ndarray) and value.dtype == object
    ):
        for item in value.ravel() if isinstance(value, np.ndarray) else value:
            yield from _reachable(item, depth + 1, seen)
    elif hasattr(value, "__dict__") and type(value).__module__.split(".")[0] != "numpy":
        yield value
        yield from _reachable(vars(value), depth + 1, seen)
    elif type(value).__name__ == "Tree":
        yield value
