"""Columns a model was fitted on as pandas categoricals; read once, at load.

Three kinds of model take a pandas ``category`` column natively:

- scikit-learn's ``HistGradientBoosting*`` with ``categorical_features="from_dtype"``: its
  ``is_categorical_`` marks them. It takes the values themselves (strings too), so the column
  only needs to be known as one of strings when it was fitted on strings.
- LightGBM fitted on a DataFrame: the booster keeps ``pandas_categorical`` (the categories of
  each such column, in order) and refuses a frame whose categorical columns differ.
- XGBoost with ``enable_categorical``: ``feature_types`` marks them ``"c"``; fitted on a pandas
  categorical, the booster (3.1 and newer) stores the column's categories and re-codes by value.
  A ``"c"`` column without stored categories (fitted on codes, or saved by an older XGBoost)
  takes its codes as numbers, as it did when it was fitted.

What is found here is a ``Categoricals``: the columns to give as ``category`` (with the
categories fitted), and those whose values are strings.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from predictor.errors import ModelFileError


@dataclass(frozen=True)
class Categoricals:
    """The categorical input columns of one model."""

    categories: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    """Per column given to the model as a pandas ``category``, its categories in fitted order."""
    strings: frozenset[int] = frozenset()
    """The categorical columns whose values are strings."""


def categoricals_of(head: Any, names: tuple[str, ...] | None, width: int | None) -> Categoricals:
    """The categorical columns of ``head``, the step that sees the raw input.

    Raises:
        ModelFileError: a LightGBM model whose kept categories do not match its columns.
    """
    if width is None or names is None:
        return Categoricals()  # fitted on a bare array: no pandas categoricals
    mask = getattr(head, "is_categorical_", None)
    if mask is not None and hasattr(head, "_raw_predict"):  # scikit-learn's HistGradientBoosting
        return _hist_gradient_boosting(head, names, [j for j, flag in enumerate(mask) if flag])
    booster = getattr(head, "booster_", None)
    if getattr(booster, "pandas_categorical", None):
        return _lightgbm(booster, names)
    get_booster = getattr(head, "get_booster", None)
    if callable(get_booster) and getattr(head, "enable_categorical", False):
        return _xgboost(get_booster(), names)
    return Categoricals()


def _with_strings(categories: dict[int, tuple[Any, ...]]) -> Categoricals:
    strings = {j for j, values in categories.items() if any(isinstance(v, str) for v in values)}
    return Categoricals(categories=categories, strings=frozenset(strings))


def _hist_gradient_boosting(head: Any, names: tuple[str, ...], flagged: list[int]) -> Categoricals:
    """Which flagged columns take strings: those the model answers a string in."""
    import pandas as pd

    strings = set()
    for j in flagged:
        row = pd.DataFrame([[0.0] * len(names)], columns=list(names), dtype=object)
        row[names[j]] = "a"  # an unknown category is answered as a missing one
        for k, name in enumerate(names):
            if k != j:
                row[name] = row[name].astype(np.float64)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                head.predict(row)
        except (ValueError, TypeError):
            continue
        strings.add(j)
    return Categoricals(strings=frozenset(strings))


def _lightgbm(booster: Any, names: tuple[str, ...]) -> Categoricals:
    """The columns LightGBM was given as categoricals: those its dump lists values for."""
    infos = booster.dump_model(num_iteration=0).get("feature_infos", {})
    flagged = [j for j, name in enumerate(names) if (infos.get(name) or {}).get("values")]
    kept = booster.pandas_categorical
    if len(flagged) != len(kept):
        raise ModelFileError(
            f"the LightGBM model keeps categories for {len(kept)} column(s), but {len(flagged)} "
            "of its features are categorical; expected one list of categories per column"
        )
    return _with_strings({j: tuple(values) for j, values in zip(flagged, kept, strict=True)})


def _xgboost(booster: Any, names: tuple[str, ...]) -> Categoricals:
    """The columns XGBoost stored categories for; a categorical one without takes its codes."""
    types = booster.feature_types or []
    if "c" not in types:
        return Categoricals()
    stored = dict(booster.get_categories(export_to_arrow=True).to_arrow() or [])
    categories = {}
    for j, kind in enumerate(types):
        values = stored.get(names[j]) if kind == "c" else None
        if values is not None:
            categories[j] = tuple(values.to_pylist())
    return _with_strings(categories)


def as_categoricals(
    table: Any, names: tuple[str, ...], categories: dict[int, tuple[Any, ...]]
) -> Any:
    """``table`` (a DataFrame) with each categorical column as a ``category``.

    The categories are the fitted ones: a value outside them becomes missing, as the model
    reads an unknown one.
    """
    import pandas as pd

    for j, values in categories.items():
        table[names[j]] = pd.Categorical(table[names[j]], categories=list(values))
    return table
