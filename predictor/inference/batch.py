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
from predictor.inference.signature import PREDICT, PREDICT_PROBA, Signature

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
        UnsupportedOutputError: an unknown name, or ``predict_proba`` on a regressor.
    """
    if names is None or len(names) == 0:
        return (PREDICT,)
    chosen: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise PayloadError(f"output names must be strings, got {type(name).__name__}")
        if name == PREDICT_PROBA and PREDICT_PROBA not in signature.outputs:
            raise UnsupportedOutputError(
                "predict_proba is only available for classifiers; "
                f"this model is a {signature.task} model (ask for 'predict')"
            )
        if name not in signature.outputs:
            raise UnsupportedOutputError(
                f"unknown output name; this model gives: {', '.join(signature.outputs)}"
            )
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)
