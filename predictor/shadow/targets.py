"""What a shadow is: a second loaded model in this process, or another endpoint to mirror to.

Each takes the rows the primary decoded and answers ``predict`` (and ``predict_proba`` where it
has them), with its version and class labels, so ``compare`` can set the answers side by side.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import orjson
import pandas as pd

from predictor.inference.batch import Results
from predictor.inference.estimator import run_estimator
from predictor.inference.features import Features
from predictor.inference.signature import PREDICT, PREDICT_PROBA
from predictor.loading.loader import LoadedModel

MIRROR_TIMEOUT_S = 5.0


class ShadowTarget(Protocol):
    """A shadow: answers the primary's rows."""

    version: str
    classes: tuple[Any, ...] | None

    def answer(self, features: Features, wanted: frozenset[str] | None = None) -> Results:
        """``predict`` (and ``predict_proba`` where it has them) for the rows.

        ``wanted``: the outputs the primary computed; others need not be (comparison and log
        use only those).
        """
        ...


@dataclass
class ShadowModel:
    """A second model loaded in this process, with every check the primary got."""

    loaded: LoadedModel
    version: str = field(init=False)
    classes: tuple[Any, ...] | None = field(init=False)

    def __post_init__(self) -> None:
        self.version = self.loaded.version
        self.classes = self.loaded.signature.classes
        outputs = self.loaded.signature.outputs
        self._outputs = tuple(o for o in (PREDICT, PREDICT_PROBA) if o in outputs) or outputs[:1]

    def answer(self, features: Features, wanted: frozenset[str] | None = None) -> Results:
        """The shadow's outputs (those in ``wanted`` it has) for rows decoded by the primary."""
        engine, signature = self.loaded.engine, self.loaded.signature
        if isinstance(features, pd.DataFrame) and not engine.takes_frames and signature.all_numeric:
            features = features.to_numpy(dtype=np.float64)
        elif (
            isinstance(features, np.ndarray)
            and engine.takes_frames
            and signature.feature_names is not None
            and features.ndim == 2
        ):
            features = pd.DataFrame(features, columns=list(signature.feature_names))
        outputs = tuple(o for o in self._outputs if wanted is None or o in wanted)
        return run_estimator(engine, features, outputs or self._outputs[:1])


@dataclass
class MirrorEndpoint:
    """Another endpoint's v1 ``:predict``: the rows are sent there and its answers compared."""

    url: str
    version: str = "unknown"
    classes: tuple[Any, ...] | None = None

    def answer(self, features: Features, wanted: frozenset[str] | None = None) -> Results:
        """POST the rows as v1 instances; the answer's outputs (and version) are read back."""
        table = features.to_numpy() if isinstance(features, pd.DataFrame) else features
        rows = table.tolist()
        body = {"instances": rows, "parameters": {"outputs": [PREDICT, PREDICT_PROBA]}}
        answer = self._post(body)
        if "error" in answer and "predict_proba" in str(answer["error"]):
            answer = self._post({"instances": rows})  # a model without probabilities
        if "predictions" not in answer:
            raise ValueError("the mirror answered without predictions")
        self.version = str(answer.get("model_version", self.version))
        classes = answer.get("classes")
        self.classes = tuple(classes) if isinstance(classes, list) else self.classes
        results: Results = {PREDICT: np.asarray(answer.get(PREDICT, answer["predictions"]))}
        if PREDICT_PROBA in answer:
            results[PREDICT_PROBA] = np.asarray(answer[PREDICT_PROBA], dtype=np.float64)
        return results

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url,
            data=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
            headers={"content-type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=MIRROR_TIMEOUT_S) as response:  # noqa: S310
                document = orjson.loads(response.read())
        except urllib.error.HTTPError as e:
            document = orjson.loads(e.read() or b"{}")
        if not isinstance(document, dict):
            raise ValueError("the mirror answered something other than a JSON object")
        return document
