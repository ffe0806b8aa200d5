"""What a decoded request is to the request path: a ``Batch`` in, ``Results`` out; pure.

``requested_outputs`` checks the outputs a caller named against what the model gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from predictor.errors import PayloadError, UnsupportedOutputError
from predictor.inference.features import Features
from predictor.inference.signature import OUTPUT_METHODS, Signature

Results = dict[str, np.ndarray]
"""Each requested output's values, by output name."""


@dataclass(frozen=True)
class Batch:
    """Decoded rows ready for the estimator, and the outputs the caller asked for."""

    features: Features
    n_rows: int
    outputs: tuple[str, ...]


def requested_outputs(names: Sequence[Any] | None, signature: Signature) -> tuple[str, ...]:
    """Check the output names a caller asked for; ``predict`` when none were named.

    Raises:
        UnsupportedOutputError: an unknown name, or an output this model does not give.
    """
    if names is None or len(names) == 0:
        return signature.outputs[:1]
    chosen: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise PayloadError(f"output names must be strings, got {type(name).__name__}")
        if name in OUTPUT_METHODS and name not in signature.outputs:
            raise UnsupportedOutputError(
                f"this {signature.task} model has no {name}; "
                f"it gives: {', '.join(signature.outputs)}"
            )
        if name not in signature.outputs:
            raise UnsupportedOutputError(
                f"unknown output name; this model gives: {', '.join(signature.outputs)}"
            )
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)
