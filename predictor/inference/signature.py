"""What a fitted estimator takes and gives: the model's signature.

It is read at load by ``introspect.signature_of``. The signature drives request validation
(feature count, names, types, where a value may be missing and what it is given as), the v2
model metadata, and which outputs a caller may ask for.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"
DECISION_FUNCTION = "decision_function"
SCORE_SAMPLES = "score_samples"
TRANSFORM = "transform"
OUTPUT_METHODS = (PREDICT, PREDICT_PROBA, DECISION_FUNCTION, SCORE_SAMPLES, TRANSFORM)
"""Every output a caller may ask for, when the estimator has the method of that name."""
NUMERIC = "FP64"
STRING = "BYTES"


@dataclass(frozen=True)
class OutputSpec:
    """One output the estimator gives: its v2 datatype and the shape of one row's value."""

    name: str
    datatype: str
    row_shape: tuple[int, ...] = ()
    """``()`` for one value per row, ``(K,)`` for K values per row."""


@dataclass(frozen=True)
class Signature:
    """The inputs and outputs of one fitted estimator."""

    task: str
    """classification, regression, clustering, outlier_detection or transform."""
    n_features: int | None
    """Columns per row; None when the estimator does not say (width is then not checked)."""
    feature_names: tuple[str, ...] | None
    """Column names the estimator was fitted with, in order; None when fitted on a bare array."""
    feature_dtypes: tuple[str, ...]
    """v2 datatype per feature: ``FP64`` (numbers) or ``BYTES`` (strings)."""
    classes: tuple[Any, ...] | None
    """Class labels (classifiers), in the column order of ``predict_proba``; else None."""
    label_datatype: str
    """v2 datatype of the ``predict`` output."""
    allow_nan: bool
    """Whether the estimator takes missing values (where ``nan_features`` does not say)."""
    text: bool = False
    """The model takes one document (a string) per row, not a row of features."""
    nan_features: tuple[bool, ...] | None = None
    """Per feature, whether a missing value there is taken (asked of the model at load)."""
    available: tuple[OutputSpec, ...] = ()
    """The outputs the estimator gives; empty means ``predict`` (and ``predict_proba``)."""
    float32: bool = False
    """The model takes 32-bit floats only (a PyTorch network behind skorch, for one)."""
    missing_markers: tuple[Any, ...] = ()
    """Per feature, what the model reads as a missing value there: NaN, or for a string column
    the marker it was fitted with (``None`` for one fitted on Parquet's missing strings)."""
    categoricals: tuple[tuple[int, tuple[Any, ...]], ...] = ()
    """The features given to the model as pandas categoricals: (index, fitted categories)."""
    takes_mappings: bool = False
    """The model takes each row as a mapping of feature to value (a DictVectorizer front);
    any feature may be left out."""

    @functools.cached_property
    def outputs(self) -> tuple[str, ...]:
        """The output names a caller may request, the default first (read once per model)."""
        if self.available:
            return tuple(o.name for o in self.available)
        return (PREDICT, PREDICT_PROBA) if self.classes is not None else (PREDICT,)

    @functools.cached_property
    def all_numeric(self) -> bool:
        """True when every feature is a number (the fast, pandas-free decoding path)."""
        return not self.text and all(d == NUMERIC for d in self.feature_dtypes)

    def takes_nan(self, index: int) -> bool:
        """Whether feature ``index`` may be missing."""
        if self.nan_features is not None and index < len(self.nan_features):
            return self.nan_features[index]
        return self.allow_nan

    def missing_marker(self, index: int) -> Any:
        """What a missing value (JSON null, an empty CSV cell) in feature ``index`` is given as."""
        if index < len(self.missing_markers):
            return self.missing_markers[index]
        return math.nan

    def output(self, name: str) -> OutputSpec:
        """The spec of output ``name`` (a plain FP64 value when the estimator was not asked)."""
        for spec in self.available:
            if spec.name == name:
                return spec
        if name == PREDICT:
            return OutputSpec(PREDICT, self.label_datatype)
        width = (len(self.classes),) if self.classes is not None else ()
        return OutputSpec(name, NUMERIC, width if name == PREDICT_PROBA else ())

    def lacking(self, columns: Iterable[str]) -> str | None:
        """Why a table with ``columns`` cannot feed this model by name; None when it can.

        Only for models fitted with feature names (others take columns by position).
        """
        if self.feature_names is None:
            return None
        present = set(columns)
        missing = [n for n in self.feature_names if n not in present]
        if not missing:
            return None
        return (
            f"lacks the feature column(s) {', '.join(missing)}; "
            f"the model takes: {', '.join(self.feature_names)}"
        )

    def feature_label(self, index: int) -> str:
        """How messages name feature ``index``: its name when known, else its position."""
        if self.feature_names is not None and index < len(self.feature_names):
            return f"'{self.feature_names[index]}'"
        return f"{index}"


def dense(values: Any) -> np.ndarray:
    """An estimator's answer as a dense array (sparse matrices from transformers included)."""
    if hasattr(values, "toarray"):
        values = values.toarray()
    return np.asarray(values)


def datatype_of(array: np.ndarray) -> str:
    """The v2 datatype that carries ``array``'s values."""
    kind = array.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return "INT64"
    if kind == "f":
        return NUMERIC
    return STRING
