"""Which request feature each column the final estimator sees comes from; read once, at load.

A pipeline's preprocessing turns the request's features into the columns its final estimator is
fitted on: a one-hot encoder makes one column per category, a text vectorizer one per term, a
scaler keeps one per feature. Attributions computed on those columns are summed back to the
request's features by this map, which keeps them exact for additive attributions (the sum of a
feature's columns is that feature's share).

The map is read from the fitted steps: a ``ColumnTransformer``'s column selections and output
slices, and each step's ``get_feature_names_out`` (an output named after one input, as
``city_paris`` is after ``city``, comes from it). A step whose outputs cannot be traced to its
inputs (an imputer's missing indicator, a PCA) makes the model's explanations unavailable, and
says which step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from predictor.errors import ModelFileError
from predictor.inference.schema import input_indices


class UntraceableError(ModelFileError):
    """A step's output columns cannot be traced back to its input columns."""


def source_columns(pre: Any, width: int, names: tuple[str, ...] | None) -> np.ndarray:
    """For each column ``pre`` outputs, the index of the input feature it comes from.

    Args:
        pre: the fitted preprocessing (a transformer or a pipeline of them), or None.
        width: how many input features there are.
        names: their names, when the model knows them.

    Raises:
        UntraceableError: a step's outputs cannot be traced to its inputs.
    """
    inputs = list(names) if names is not None else [f"x{j}" for j in range(width)]
    if pre is None:
        return np.arange(width)
    return np.asarray(_trace(pre, inputs), dtype=np.intp)


def _trace(step: Any, inputs: list[str]) -> list[int]:
    """Each output column of ``step``, as an index into ``inputs``."""
    if hasattr(step, "steps"):
        mapping = list(range(len(inputs)))
        names = inputs
        for _, inner in step.steps:
            if inner in (None, "passthrough"):
                continue
            inner_map = _trace(inner, names)
            mapping = [mapping[k] for k in inner_map]
            names = _output_names(inner, names)
        return mapping
    if hasattr(step, "transformers_"):
        return _trace_columns(step, inputs)
    if len(inputs) == 1:
        return [0] * _width(step, inputs)
    return _by_name(step, inputs)


def _trace_columns(transformer: Any, inputs: list[str]) -> list[int]:
    """A ``ColumnTransformer``: each transformer's outputs, at its slice of the output."""
    by_name = input_indices(transformer)
    slices: dict[str, slice] = transformer.output_indices_
    total = max((s.stop for s in slices.values()), default=0)
    mapping = [-1] * total
    for name, inner, _ in transformer.transformers_:
        out = slices.get(name, slice(0, 0))
        if out.stop == out.start or inner == "drop":
            continue
        picked = by_name.get(name, [])
        local = (
            list(range(len(picked)))
            if inner == "passthrough"
            else _trace(inner, [inputs[i] for i in picked])
        )
        for k, position in enumerate(range(out.start, out.stop)):
            mapping[position] = picked[local[k]]
    if -1 in mapping:
        raise UntraceableError(
            "a column the ColumnTransformer outputs comes from none of its inputs"
        )
    return mapping


def _by_name(step: Any, inputs: list[str]) -> list[int]:
    """Outputs named after one input each (``city_paris`` from ``city``; ``rooms`` from itself)."""
    outputs = _output_names(step, inputs)
    found = []
    for output in outputs:
        matches = [
            j for j, name in enumerate(inputs) if output == name or output.startswith(f"{name}_")
        ]
        if not matches:
            raise UntraceableError(
                f"the {type(step).__name__} step makes a column that names none of its inputs, "
                "so its share cannot be given to a request feature"
            )
        found.append(max(matches, key=lambda j: len(inputs[j])))
    return found


def _output_names(step: Any, inputs: list[str]) -> list[str]:
    namer = getattr(step, "get_feature_names_out", None)
    if not callable(namer):
        raise UntraceableError(
            f"the {type(step).__name__} step does not name its output columns "
            "(get_feature_names_out), so they cannot be traced to the request's features"
        )
    try:
        return [str(n) for n in namer(np.asarray(inputs, dtype=object))]
    except (ValueError, TypeError, AttributeError):
        return [str(n) for n in namer()]


def _width(step: Any, inputs: list[str]) -> int:
    try:
        return len(_output_names(step, inputs))
    except UntraceableError:
        vocabulary = getattr(step, "vocabulary_", None)
        if vocabulary is None:
            raise
        return len(vocabulary)
