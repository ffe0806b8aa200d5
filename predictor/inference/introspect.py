"""Read a fitted estimator's signature, once at load: from its attributes, and by asking it.

From the estimator itself: ``n_features_in_``, ``feature_names_in_``, ``classes_``, the column
types it was fitted on (``schema``), the columns it takes as pandas categoricals
(``categorical``). From its answers to one example row: each output's datatype and width, where
a missing value is taken and which marker it is given as. A bundle manifest may override the
feature dtypes.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import replace
from typing import Any

import numpy as np

from predictor.errors import ModelFileError
from predictor.inference.categorical import categoricals_of
from predictor.inference.mappings import as_mappings, mapping_keys
from predictor.inference.schema import (
    UNKNOWN_MARKER,
    example_value,
    input_steps,
    missing_markers,
    missing_value_support,
    probe_frame,
    string_columns,
    takes_float32,
    takes_text,
)
from predictor.inference.signature import (
    NUMERIC,
    OUTPUT_METHODS,
    PREDICT,
    PREDICT_PROBA,
    STRING,
    TRANSFORM,
    OutputSpec,
    Signature,
    datatype_of,
    dense,
)

logger = logging.getLogger(__name__)


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
    keys = None if text else mapping_keys(input_steps(estimator)[-1])
    if keys is not None:
        names, width = keys[0], len(keys[0])
    strings = {0} if text else string_columns(estimator, width)
    if keys is not None:
        strings = {j for j, kind in enumerate(keys[1]) if kind == STRING}
    categoricals = categoricals_of(input_steps(estimator)[-1], names, width)
    strings |= categoricals.strings
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
        categoricals=tuple(sorted(categoricals.categories.items())),
        takes_mappings=keys is not None,
    )
    categories = categoricals.categories
    if width is None:
        return replace(base, available=_declared_outputs(base, methods))
    example = [
        categories[j][0] if categories.get(j) else example_value(estimator, j, j in strings)
        for j in range(width)
    ]
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
    if text:
        return replace(base, available=available)
    if base.takes_mappings:  # a missing value is a key left out
        return replace(
            base, available=available, nan_features=(True,) * width, missing_markers=(None,) * width
        )
    markers = missing_markers(estimator, example, names, strings, categories)
    for j in (j for j, marker in markers.items() if marker is UNKNOWN_MARKER):
        logger.warning(
            "feature %s: the model answers a missing string given as None and as NaN "
            "differently, and no imputer or encoder says which it was fitted with; a missing "
            "value there is refused",
            base.feature_label(j),
        )
    nan_features = missing_value_support(estimator, example, names, strings, markers, categories)
    return replace(
        base,
        available=available,
        nan_features=nan_features,
        missing_markers=tuple(
            math.nan if markers.get(j, UNKNOWN_MARKER) is UNKNOWN_MARKER else markers[j]
            for j in range(width)
        ),
    )


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
    elif base.takes_mappings:
        features = as_mappings(np.asarray([example], dtype=object), base.feature_names or ())
    elif base.float32:
        features = np.asarray([example], dtype=np.float32)
    else:
        features = probe_frame([example], base.feature_names, strings, dict(base.categoricals))
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
