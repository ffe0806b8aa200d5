"""Run the estimator on a decoded batch, and tell the caller's faults from the model's.

scikit-learn validates the data it is given and raises ``ValueError``, ``TypeError`` or
``KeyError`` (a missing column) when it cannot take it: an unknown category, a string where a
number belongs. Those are the caller's and become a ``PayloadError`` (400). Its messages quote
the offending values, so quoted and bracketed parts are replaced before the message reaches
anyone. Anything else is a fault of the model or of this server and propagates, to be answered
500 without its text.
"""

from __future__ import annotations

import re

import numpy as np

from predictor.errors import PayloadError
from predictor.inference.batch import Results
from predictor.inference.engines import Engine
from predictor.inference.features import Features
from predictor.inference.signature import PREDICT, PREDICT_PROBA, dense

_QUOTED = re.compile(r"""np\.\w+\((['"]).*?\1\)|(['"]).*?\2|\[[^\]]*\]|\{[^}]*\}""")
MAX_REASON = 200


def run_estimator(engine: Engine, features: Features, outputs: tuple[str, ...]) -> Results:
    """Compute the requested outputs for decoded features.

    Raises:
        PayloadError: the estimator refused the data (its message, without the values).
    """
    results: Results = {}
    try:
        if PREDICT in outputs and PREDICT_PROBA in outputs:
            labels, proba = engine.predict_and_proba(features)
            results = {PREDICT: np.asarray(labels), PREDICT_PROBA: np.asarray(proba)}
        for name in outputs:
            if name in results:
                continue
            if name == PREDICT:
                results[name] = np.asarray(engine.predict(features))
            elif name == PREDICT_PROBA:
                results[name] = np.asarray(engine.predict_proba(features))
            else:
                results[name] = dense(engine.output(name, features))
    except (ValueError, TypeError, KeyError) as e:
        raise PayloadError(f"the model rejected the input: {scrubbed(e)}") from e
    return results


def scrubbed(error: BaseException) -> str:
    """An estimator's message on one line, with quoted, listed and mapped values left out."""
    text = _QUOTED.sub("…", " ".join(str(error).split()))
    return text[:MAX_REASON] or type(error).__name__
