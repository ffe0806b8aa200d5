"""What a fitted estimator takes and gives, read once at load: the model's signature.

The signature drives request validation (feature count, names, types), the v2 model metadata,
and which outputs a caller may ask for. It is derived from the estimator itself
(``n_features_in_``, ``feature_names_in_``, ``classes_``, scikit-learn's input tags); a bundle
manifest may refine the feature dtypes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import is_classifier

from predictor.errors import ModelFileError

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"
NUMERIC = "FP64"
STRING = "BYTES"


@dataclass(frozen=True)
class Signature:
    """The inputs and outputs of one fitted estimator."""

    task: str
    """``classification`` or ``regression``."""
    n_features: int | None
    """Columns per row; None when the estimator does not say (width is then not checked)."""
    feature_names: tuple[str, ...] | None
    """Column names the estimator was fitted with, in order; None when fitted on a bare array."""
    feature_dtypes: tuple[str, ...]
    """v2 datatype per feature: ``FP64`` (numbers) or ``BYTES`` (strings)."""
    classes: tuple[Any, ...] | None
    """Class labels, in the column order of ``predict_proba``; None for regressors."""
    label_datatype: str
    """v2 datatype of the ``predict`` output."""
    allow_nan: bool
    """Whether the estimator takes missing values (NaN)."""

    @property
    def outputs(self) -> tuple[str, ...]:
        """The output names a caller may request."""
        return (PREDICT, PREDICT_PROBA) if self.classes is not None else (PREDICT,)

    @property
    def all_numeric(self) -> bool:
        """True when every feature is a number (the fast, pandas-free decoding path)."""
        return all(d == NUMERIC for d in self.feature_dtypes)

    def feature_label(self, index: int) -> str:
        """How messages name feature ``index``: its name when known, else its position."""
        if self.feature_names is not None and index < len(self.feature_names):
            return f"'{self.feature_names[index]}'"
        return f"{index}"


def signature_of(estimator: Any, *, feature_dtypes: dict[str, str] | None = None) -> Signature:
    """Read the signature of a fitted estimator.

    Args:
        estimator: a fitted scikit-learn estimator or Pipeline.
        feature_dtypes: optional ``{feature name: "FP64"|"BYTES"}`` from a bundle manifest.

    Raises:
        ModelFileError: the object is not a fitted estimator with ``predict``.
    """
    if not callable(getattr(estimator, "predict", None)):
        raise ModelFileError(
            f"the artifact holds a {type(estimator).__name__}, which has no predict(); "
            "expected a fitted scikit-learn estimator or Pipeline"
        )
    names_attr = getattr(estimator, "feature_names_in_", None)
    names = tuple(str(n) for n in names_attr) if names_attr is not None else None
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is None and names is not None:
        n_features = len(names)
    width = int(n_features) if n_features is not None else None
    dtypes = _feature_dtypes(names, width, feature_dtypes or {})

    classes_attr = getattr(estimator, "classes_", None)
    if is_classifier(estimator) and classes_attr is not None:
        classes = tuple(np.asarray(classes_attr).tolist())
        has_proba = callable(getattr(estimator, "predict_proba", None))
        return Signature(
            task="classification",
            n_features=width,
            feature_names=names,
            feature_dtypes=dtypes,
            classes=classes if has_proba else None,
            label_datatype=datatype_of(np.asarray(classes_attr)),
            allow_nan=_allows_nan(estimator),
        )
    return Signature(
        task="regression",
        n_features=width,
        feature_names=names,
        feature_dtypes=dtypes,
        classes=None,
        label_datatype=NUMERIC,
        allow_nan=_allows_nan(estimator),
    )


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
    names: tuple[str, ...] | None, width: int | None, declared: dict[str, str]
) -> tuple[str, ...]:
    if width is None:
        return ()
    if names is None:
        return tuple(NUMERIC for _ in range(width))
    return tuple(STRING if declared.get(n) == STRING else NUMERIC for n in names)


def _allows_nan(estimator: Any) -> bool:
    try:
        return bool(estimator.__sklearn_tags__().input_tags.allow_nan)
    except AttributeError:
        return False
