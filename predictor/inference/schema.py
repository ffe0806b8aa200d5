"""What a fitted model takes as input, read from the model itself: column types, text, NaN.

- **String columns**: the columns a ``ColumnTransformer`` (or an encoder at the head of a
  pipeline) hands to a transformer that was fitted on strings: an encoder whose ``categories_``
  are strings, an imputer whose ``statistics_`` are, or a text vectorizer.
- **Text models**: a pipeline whose first step is a text vectorizer takes one string per row.
- **Missing values**: the model is asked, at load, with one missing value in one feature at a
  time, and the answer is recorded per feature. Tags alone are not enough (an imputing pipeline
  says nothing; a forest may say yes for numbers but not for its encoder's strings).
- **The missing marker of a string column**: ``None`` (as Parquet gives) or NaN (as ``read_csv``
  gives), whichever the model was fitted with. An imputer in front of the column says it with its
  ``missing_values``; an encoder with the category it learned (``None`` or NaN). Where neither
  says, both are tried on an example row: the same answer means either will do, different ones
  mean a missing value there cannot be given faithfully, and the column is marked as refusing one.

Everything here runs once, at load.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from predictor.inference.categorical import as_categoricals

logger = logging.getLogger(__name__)

MAX_PROBED_FEATURES = 256
"""Past this many features, missing values are judged by the estimator's tags alone."""


def input_steps(estimator: Any) -> list[Any]:
    """The steps that see the raw input, outermost first (a pipeline's first step, and so on)."""
    steps = [estimator]
    while hasattr(estimator, "steps"):
        heads = [step for _, step in estimator.steps if step not in (None, "passthrough")]
        if not heads:
            break
        estimator = heads[0]
        steps.append(estimator)
    return steps


def is_text_vectorizer(step: Any) -> bool:
    """A transformer that turns raw documents (one string each) into features."""
    from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer

    return isinstance(step, CountVectorizer | HashingVectorizer)


def takes_text(estimator: Any) -> bool:
    """Whether the model takes one document (a string) per row rather than a row of features."""
    return any(is_text_vectorizer(step) for step in input_steps(estimator))


def string_columns(estimator: Any, width: int | None) -> set[int]:
    """Indices of the input columns the model was fitted on as strings."""
    head = input_steps(estimator)[-1]
    return {
        j
        for j in range(width or 0)
        if any(_column_takes_strings(owner, at) for owner, at in _owners(head, j))
    }


def column_steps(transformer: Any) -> list[Any]:
    """The steps one input column goes through in ``transformer``, in order.

    A pipeline's steps one after another (nested pipelines flattened): the first encoder or
    imputer among them, past steps that keep columns in place (a ``FunctionTransformer``), is
    the one that learned what the column holds.
    """
    if not hasattr(transformer, "steps"):
        return [transformer]
    found = [transformer]
    for _, step in transformer.steps:
        if step not in (None, "passthrough"):
            found.extend(column_steps(step))
    return found


def _column_takes_strings(transformer: Any, position: int) -> bool:
    """Whether ``transformer`` was fitted with strings in its ``position``-th input column."""
    for step in column_steps(transformer):
        if is_text_vectorizer(step):
            return True
        categories = getattr(step, "categories_", None)
        if categories is not None and position < len(categories):
            return _is_text(np.asarray(categories[position]))
        statistics = getattr(step, "statistics_", None)
        if statistics is not None and position < len(statistics):
            value = statistics[position]
            if isinstance(value, str):
                return True
    return False


def _is_text(values: np.ndarray) -> bool:
    return values.dtype.kind in "OUS" and any(isinstance(v, str) for v in values.tolist())


def takes_float32(estimator: Any) -> bool:
    """Whether the model is a network whose weights are 32-bit floats (skorch's ``module_``).

    Such a model refuses 64-bit input, and usually cannot say how many features it takes.
    """
    module = getattr(input_steps(estimator)[-1], "module_", None)
    parameters = getattr(module, "parameters", None)
    if not callable(parameters):
        return False
    first = next(iter(parameters()), None)
    return str(getattr(first, "dtype", "")) == "torch.float32"


def example_value(estimator: Any, column: int, is_string: bool) -> Any:
    """A value the model surely takes in ``column``: a known category, else 0 or ``"a"``."""
    head = input_steps(estimator)[-1]
    for transformer, position in _owners(head, column):
        for step in column_steps(transformer):
            categories = getattr(step, "categories_", None)
            if categories is not None and position < len(categories):
                known = [v for v in np.asarray(categories[position]).tolist() if _present(v)]
                if known:
                    return known[0]
    return "a" if is_string else 0.0


def _owners(head: Any, column: int) -> list[tuple[Any, int]]:
    """The transformers that read input ``column``, each with the column's position in its input."""
    transformers = getattr(head, "transformers_", None)
    if transformers is None:
        return [(head, column)]
    by_name = input_indices(head)
    owners = []
    for name, transformer, _ in transformers:
        indices = by_name.get(name, [])
        if column in indices and transformer not in ("drop", "passthrough"):
            owners.append((transformer, indices.index(column)))
    return owners


def input_indices(column_transformer: Any) -> dict[str, list[int]]:
    """Each transformer's input columns (by position) in a fitted ``ColumnTransformer``.

    The one reach into its private ``_transformer_to_input_indices`` (the public
    ``transformers_`` holds the selections as given: names, masks, slices or callables).
    """
    found: dict[str, Any] = getattr(column_transformer, "_transformer_to_input_indices", {})
    return {name: [int(i) for i in indices] for name, indices in found.items()}


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


UNKNOWN_MARKER = object()
"""A string column whose model answers ``None`` and NaN differently, with nothing saying which
it was fitted with."""


def missing_markers(
    estimator: Any,
    example: list[Any],
    names: Any,
    strings: set[int],
    categories: dict[int, tuple[Any, ...]] | None = None,
) -> dict[int, Any]:
    """Per string column, the value the model was fitted to read as missing there.

    NaN where the model does not care; ``UNKNOWN_MARKER`` where it answers ``None`` and NaN
    differently and nothing says which one it knows.
    """
    markers: dict[int, Any] = {}
    head = input_steps(estimator)[-1]
    for column in sorted(strings):
        said = _marker_said(head, column)
        if said is UNKNOWN_MARKER and len(example) <= MAX_PROBED_FEATURES:
            frame = functools.partial(
                probe_frame, names=names, strings=strings, categories=categories
            )
            said = _marker_asked(estimator, example, frame, column)
        markers[column] = said
    return markers


def _marker_said(head: Any, column: int) -> Any:
    """The marker an imputer (its ``missing_values``) or an encoder (a learned category) names."""
    for transformer, position in _owners(head, column):
        for step in column_steps(transformer):
            if hasattr(step, "missing_values") and hasattr(step, "statistics_"):
                return step.missing_values  # an imputer reads the raw column first
            categories = getattr(step, "categories_", None)
            if categories is not None and position < len(categories):
                learned = np.asarray(categories[position]).tolist()
                if any(v is None for v in learned):
                    return None
                if any(isinstance(v, float) and math.isnan(v) for v in learned):
                    return math.nan
                break  # this encoder learned no missing value; another owner may have
    return UNKNOWN_MARKER


def _marker_asked(estimator: Any, example: list[Any], frame: Any, column: int) -> Any:
    """NaN when the model answers a row with ``None`` and with NaN in ``column`` alike."""
    method = "predict_proba" if callable(getattr(estimator, "predict_proba", None)) else "predict"
    answers = []
    for marker in (None, math.nan):
        row = list(example)
        row[column] = marker
        answers.append(_answer(estimator, frame([row]), method))
    with_none, with_nan = answers
    if with_none is None or with_nan is None:  # one marker is refused: the other is the one
        return None if with_nan is None and with_none is not None else math.nan
    same = with_none.shape == with_nan.shape and bool(
        np.all((with_none == with_nan) | (with_none != with_none))
    )
    return math.nan if same else UNKNOWN_MARKER


def probe_frame(
    rows: list[list[Any]],
    names: tuple[str, ...] | None,
    strings: set[int],
    categories: dict[int, tuple[Any, ...]] | None = None,
) -> Any:
    """Rows as the estimator takes them: a DataFrame when it knows its feature names.

    Its categorical columns (``categories``) become pandas categoricals.
    """
    if names is None and not strings:
        return np.asarray(rows, dtype=np.float64)
    columns = list(names) if names is not None else list(range(len(rows[0])))
    table = pd.DataFrame(rows, columns=columns, dtype=object)
    for j, column in enumerate(columns):
        if j not in strings and j not in (categories or {}):
            table[column] = table[column].astype(np.float64)
    if categories and names is not None:
        table = as_categoricals(table, names, categories)
    return table if names is not None else table.to_numpy()


def missing_value_support(
    estimator: Any,
    example: list[Any],
    names: tuple[str, ...] | None,
    strings: set[int],
    markers: dict[int, Any] | None = None,
    categories: dict[int, tuple[Any, ...]] | None = None,
) -> tuple[bool, ...] | None:
    """Per feature, whether ``predict`` takes a missing value there; None if it cannot be asked.

    The example row must be one the model takes; each probe replaces one of its values with the
    column's missing marker (NaN, or for a string column the one ``missing_markers`` found).
    A row of markers is asked first: a model that takes it takes a missing value anywhere, and
    a single estimator that refuses it refuses one everywhere; only a composite (a pipeline, a
    column transformer) is then asked feature by feature.
    """
    if len(example) > MAX_PROBED_FEATURES:
        return None
    width = len(example)
    marks = [(markers or {}).get(j, math.nan) for j in range(width)]
    refused = {j for j, mark in enumerate(marks) if mark is UNKNOWN_MARKER}
    frame = functools.partial(probe_frame, names=names, strings=strings, categories=categories)
    if not refused and _answers(estimator, frame([marks])):
        return (True,) * width  # one question answers them all
    if not hasattr(estimator, "steps") and not hasattr(estimator, "transformers_"):
        return (False,) * width  # a single estimator takes missing values everywhere or nowhere
    answers = []
    for j in range(len(example)):
        row = list(example)
        row[j] = marks[j]
        answers.append(j not in refused and _answers(estimator, frame([row])))
    return tuple(answers)


def _answers(estimator: Any, features: Any) -> bool:
    return _answer(estimator, features) is not None


def _answer(estimator: Any, features: Any, method: str = "predict") -> np.ndarray | None:
    """The model's answer to ``features``; None when it refuses them or answers NaN."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = np.asarray(getattr(estimator, method)(features))
    except Exception:  # noqa: BLE001 - any refusal means "not this input"; nothing is served yet
        return None
    if not result.size or (result.dtype.kind == "f" and np.isnan(result).any()):
        return None
    return result
