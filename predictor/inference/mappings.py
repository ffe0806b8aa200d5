"""Models that take each row as a mapping of feature to value (a ``DictVectorizer`` front).

Such a model has no column order: it reads ``{"city": "paris", "rooms": 3}`` and one-hot
encodes the strings. The keys it knows are read from its vocabulary at load (a string-valued key
appears as ``key=value``, a numeric one as ``key``), so the model is served like one with named
columns, every one of which may be missing: a row is decoded and checked as any other, then
handed to the model as a mapping that leaves out its missing values.

A ``FeatureHasher`` front keeps no vocabulary, so its keys cannot be listed or checked; it is
refused at load.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from predictor.errors import ModelFileError

STRING = "BYTES"
NUMERIC = "FP64"


def mapping_keys(head: Any) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The keys a mapping-taking ``head`` knows and each one's v2 datatype; None for others.

    Raises:
        ModelFileError: the head takes mappings but cannot list their keys (a FeatureHasher).
    """
    from sklearn.feature_extraction import DictVectorizer, FeatureHasher

    if isinstance(head, FeatureHasher) and head.input_type == "dict":
        raise ModelFileError(
            "the model's first step is a FeatureHasher of mappings, which keeps no list of its "
            "keys: rows could not be checked; expected a front that knows its features (a "
            "DictVectorizer, or a ColumnTransformer over named columns)"
        )
    if not isinstance(head, DictVectorizer) or not hasattr(head, "feature_names_"):
        return None
    kinds: dict[str, str] = {}
    for name in head.feature_names_:
        key, sep, _ = str(name).partition(head.separator)
        if sep:
            kinds[key] = STRING
        else:
            kinds.setdefault(key, NUMERIC)
    return tuple(kinds), tuple(kinds.values())


def as_mappings(array: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Each row of a checked matrix as a mapping of its present values, in an object array."""
    rows = np.empty(len(array), dtype=object)
    for i, row in enumerate(array.tolist()):
        rows[i] = {name: value for name, value in zip(names, row, strict=True) if _present(value)}
    return rows


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))
