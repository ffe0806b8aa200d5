"""What a fitted model takes as input, read from the model itself: column types, text, NaN.

- **String columns**: the columns a ``ColumnTransformer`` (or an encoder at the head of a
  pipeline) hands to a transformer that was fitted on strings: an encoder whose ``categories_``
  are strings, an imputer whose ``statistics_`` are, or a text vectorizer.
- **Text models**: a pipeline whose first step is a text vectorizer takes one string per row.
- **Missing values**: the model is asked, at load, with one missing value in one feature at a
  time, and the answer is recorded per feature. Tags alone are not enough (an imputing pipeline
  says nothing; a forest may say yes for numbers but not for its encoder's strings).

Everything here runs once, at load.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

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


def _column_takes_strings(transformer: Any, position: int) -> bool:
    """Whether ``transformer`` was fitted with strings in its ``position``-th input column."""
    for step in input_steps(transformer):
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
        for step in input_steps(transformer):
            categories = getattr(step, "categories_", None)
            if categories is not None and position < len(categories):
                known = [v for v in np.asarray(categories[position]).tolist() if _present(v)]
                if known:
                    return known[0]
    return "a" if is_string else 0.0


def _owners(head: Any, column: int) -> list[tuple[Any, int]]:
    """The transformers that read input ``column``, each with the column's position in its input.

    The one reach into ``ColumnTransformer``'s private map of transformer to input columns.
    """
    transformers = getattr(head, "transformers_", None)
    if transformers is None:
        return [(head, column)]
    by_name: dict[str, list[int]] = getattr(head, "_transformer_to_input_indices", {})
    owners = []
    for name, transformer, _ in transformers:
        indices = [int(i) for i in by_name.get(name, [])]
        if column in indices and transformer not in ("drop", "passthrough"):
            owners.append((transformer, indices.index(column)))
    return owners


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def probe_frame(rows: list[list[Any]], names: tuple[str, ...] | None, strings: set[int]) -> Any:
    """Rows as the estimator takes them: a DataFrame when it knows its feature names."""
    if names is None and not strings:
        return np.asarray(rows, dtype=np.float64)
    columns = list(names) if names is not None else list(range(len(rows[0])))
    table = pd.DataFrame(rows, columns=columns, dtype=object)
    for j, column in enumerate(columns):
        if j not in strings:
            table[column] = table[column].astype(np.float64)
    return table if names is not None else table.to_numpy()


def missing_value_support(
    estimator: Any, example: list[Any], names: tuple[str, ...] | None, strings: set[int]
) -> tuple[bool, ...] | None:
    """Per feature, whether ``predict`` takes a missing value there; None if it cannot be asked.

    The example row must be one the model takes; each probe replaces one of its values with
    NaN, which is how pandas marks a missing value in a column of numbers or of strings. A row
    of NaN is asked first: a model that takes it takes a missing value anywhere, and a single
    estimator that refuses it refuses one everywhere; only a composite (a pipeline, a column
    transformer) is then asked feature by feature.
    """
    if len(example) > MAX_PROBED_FEATURES:
        return None
    width = len(example)
    if _answers(estimator, probe_frame([[math.nan] * width], names, strings)):
        return (True,) * width  # one question answers them all
    if not hasattr(estimator, "steps") and not hasattr(estimator, "transformers_"):
        return (False,) * width  # a single estimator takes missing values everywhere or nowhere
    answers = []
    for j in range(len(example)):
        row = list(example)
        row[j] = math.nan
        answers.append(_answers(estimator, probe_frame([row], names, strings)))
    return tuple(answers)


def _answers(estimator: Any, features: Any) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = np.asarray(estimator.predict(features))
    except Exception:  # noqa: BLE001 - any refusal means "not this input"; nothing is served yet
        return False
    return bool(result.size) and not (result.dtype.kind == "f" and np.isnan(result).any())
