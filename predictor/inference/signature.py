"""What a fitted estimator takes and gives, read once at load: the model's signature.

The signature drives request validation (feature count, names, types, where a value may be
missing), the v2 model metadata, and which outputs a caller may ask for. It is derived from the
estimator itself (``n_features_in_``, ``feature_names_in_``, ``classes_``, the column types it
was fitted on, see ``schema``) and from its answers to one example row at load; a bundle
manifest may override the feature dtypes.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from predictor.errors import ModelFileError
from predictor.inference.schema import (
    example_value,
    missing_value_support,
    probe_frame,
    string_columns,
    takes_float32,
    takes_text,
)

logger = logging.getLogger(__name__)

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


def signature_of(estimator: Any, *, feature_dtypes: dict[str, str] | None = None) -> Signature:
    """Read the signature of a fitted estimator, asking it about one example row.

    Args:
        estimator: a fitted estimator or Pipeline with scikit-learn's API.
        feature_dtypes: optional ``{feature name: "FP64"|"BYTES"}`` from a bundle manifest,
            over what the model itself says.

    Raises:
        ModelFileError: the object is not a fitted estimator with ``predict`` or ``transform``.
    """
    methods = [m for m in OUTPUT_METHODS if callable(getattr(estimator, m, None))]
    if PREDICT not in methods and TRANSFORM not in methods:
        raise ModelFileError(
            f"the artifact holds a {type(estimator).__name__}, which has neither predict() nor "
            "transform(); expected a fitted estimator or Pipeline with scikit-learn's API"
        )
    text = takes_text(estimator)
    names_attr = getattr(estimator, "feature_names_in_", None)
    names = tuple(str(n) for n in names_attr) if names_attr is not None and not text else None
    n_features = 1 if text else getattr(estimator, "n_features_in_", None)
    if n_features is None and names is not None:
        n_features = len(names)
    width = int(n_features) if n_features is not None else None
    strings = {0} if text else string_columns(estimator, width)
    dtypes = _feature_dtypes(names, width, strings, feature_dtypes or {})
    strings = {j for j, kind in enumerate(dtypes) if kind == STRING}
    task = task_of(estimator)
    classes_attr = getattr(estimator, "classes_", None)
    classes = None
    label_datatype = NUMERIC
    if task == "classification" and isinstance(classes_attr, list):
        # Several outputs, each with its own classes: labels are served ([N, outputs]); their
        # probabilities (one matrix per output, each with its own width) are not.
        label_datatype = datatype_of(np.concatenate([np.asarray(c) for c in classes_attr]))
        methods = [m for m in methods if m != PREDICT_PROBA]
        logger.info(
            "a classifier of %d outputs: predict is served; predict_proba is not (its "
            "probabilities are one matrix per output)",
            len(classes_attr),
        )
    elif task == "classification" and classes_attr is not None:
        classes = tuple(np.asarray(classes_attr).tolist())
        label_datatype = datatype_of(np.asarray(classes_attr))
    base = Signature(
        task=task,
        n_features=width,
        feature_names=names,
        feature_dtypes=dtypes,
        classes=classes,
        label_datatype=label_datatype,
        allow_nan=_allows_nan(estimator),
        text=text,
        float32=not text and not strings and takes_float32(estimator),
    )
    if width is None:
        return replace(base, available=_declared_outputs(base, methods))
    example = [example_value(estimator, j, j in strings) for j in range(width)]
    if text:
        example = ["a"]
    available = _asked_outputs(estimator, base, methods, example, strings)
    if available is None and base.all_numeric:
        narrow = replace(base, float32=True)
        available = _asked_outputs(estimator, narrow, methods, example, strings)
        base = narrow if available is not None else base
    if available is None:
        logger.info("the model did not answer an example row; its outputs are taken as declared")
        return replace(base, available=_declared_outputs(base, methods))
    nan_features = None if text else missing_value_support(estimator, example, names, strings)
    return replace(base, available=available, nan_features=nan_features)


def task_of(estimator: Any) -> str:
    """What kind of estimator this is, as scikit-learn says (the final step of a pipeline)."""
    from sklearn.base import is_classifier, is_clusterer, is_outlier_detector, is_regressor

    if is_classifier(estimator):
        return "classification"
    if is_regressor(estimator):
        return "regression"
    if is_outlier_detector(estimator):
        return "outlier_detection"
    if is_clusterer(estimator):
        return "clustering"
    if callable(getattr(estimator, PREDICT, None)):
        return "regression"
    return "transform"


def _asked_outputs(
    estimator: Any, base: Signature, methods: list[str], example: list[Any], strings: set[int]
) -> tuple[OutputSpec, ...] | None:
    """Each output's datatype and row shape, from the model's answer to ``example``."""
    if base.text:
        features: Any = np.asarray(example, dtype=object)
    elif base.float32:
        features = np.asarray([example], dtype=np.float32)
    else:
        features = probe_frame([example], base.feature_names, strings)
    specs = []
    for method in methods:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = dense(getattr(estimator, method)(features))
        except Exception:  # noqa: BLE001 - the model refused the example; judged below
            if method in (PREDICT, TRANSFORM):
                return None
            continue  # e.g. predict_proba present but unusable (SVC without probability)
        datatype = (
            (base.label_datatype if base.classes is not None else datatype_of(value))
            if method == PREDICT
            else NUMERIC
        )
        specs.append(OutputSpec(method, datatype, tuple(int(n) for n in value.shape[1:])))
    return tuple(specs)


def _declared_outputs(base: Signature, methods: list[str]) -> tuple[OutputSpec, ...]:
    return tuple(base.output(m) for m in methods)


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


def _feature_dtypes(
    names: tuple[str, ...] | None, width: int | None, strings: set[int], declared: dict[str, str]
) -> tuple[str, ...]:
    """Strings where the model was fitted on strings, or where a manifest declares them."""
    if width is None:
        return ()
    kinds = [STRING if j in strings else NUMERIC for j in range(width)]
    for j, name in enumerate(names or ()):
        if name in declared:
            kinds[j] = declared[name]
    return tuple(kinds)


def _allows_nan(estimator: Any) -> bool:
    try:
        return bool(estimator.__sklearn_tags__().input_tags.allow_nan)
    except AttributeError:
        return False
