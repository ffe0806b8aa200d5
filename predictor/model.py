"""``SklearnModel``: the KServe model that serves one verified scikit-learn estimator.

``load()`` fetches, verifies and unpickles (see ``loader``), runs the bundle's acceptance sets
through ``answer_v1`` (the function that answers v1 requests), and only then sets ``ready``.
``answer_v1`` / ``answer_v2`` are the request path shared by our REST routes; ``predict`` is the
KServe hook, used by KServe's gRPC servicer and any KServe caller, and runs the same code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from kserve import Model
from kserve.errors import ModelNotReady
from kserve.protocol.infer_type import InferRequest, InferResponse

from predictor import metrics
from predictor.acceptance import run_acceptance
from predictor.bundle import runtime_versions
from predictor.config import Settings
from predictor.decode import Batch, decode_v1, decode_v2
from predictor.encode import Results, encode_v1, encode_v2
from predictor.errors import AcceptanceError, PayloadError
from predictor.loader import LoadedModel, load_model
from predictor.metadata import input_types, model_metadata, output_types
from predictor.signature import PREDICT, PREDICT_PROBA

logger = logging.getLogger(__name__)

Loader = Callable[[Settings], LoadedModel]
Observer = Callable[[Batch, Results], None]


def answer_v1(loaded: LoadedModel, body: Any, observe: Observer | None = None) -> dict[str, Any]:
    """Answer a decoded v1 ``:predict`` body with ``loaded``; ``observe`` sees what was computed."""
    batch = decode_v1(body, loaded.signature)
    results = run_estimator(loaded.estimator, batch)
    if observe is not None:
        observe(batch, results)
    return encode_v1(results, batch.outputs, loaded.signature, loaded.version)


def answer_v2(
    loaded: LoadedModel, name: str, request: InferRequest, observe: Observer | None = None
) -> InferResponse:
    """Answer a v2 InferRequest (from REST or gRPC) with ``loaded``."""
    batch = decode_v2(request, loaded.signature)
    results = run_estimator(loaded.estimator, batch)
    if observe is not None:
        observe(batch, results)
    return encode_v2(
        results,
        batch.outputs,
        loaded.signature,
        model_name=name,
        version=loaded.version,
        request=request,
    )


def run_estimator(estimator: Any, batch: Batch) -> Results:
    """Compute the requested outputs for a decoded batch."""
    results: Results = {}
    try:
        for name in batch.outputs:
            if name == PREDICT:
                results[name] = np.asarray(estimator.predict(batch.features))
            elif name == PREDICT_PROBA:
                results[name] = np.asarray(estimator.predict_proba(batch.features))
    except ValueError as e:
        # scikit-learn's own input validation (e.g. an unknown category): the caller's data.
        reason = " ".join(str(e).split())[:200]
        raise PayloadError(f"the model rejected the input: {reason}") from e
    return results


class SklearnModel(Model):  # type: ignore[misc]
    """A scikit-learn estimator served over KServe's v1 and v2 protocols."""

    def __init__(self, name: str, *, settings: Settings, loader: Loader = load_model) -> None:
        super().__init__(name, return_response_headers=True)
        self._settings = settings
        self._loader = loader
        self._loaded: LoadedModel | None = None

    def load(self) -> bool:
        """Fetch, verify, unpickle and accept the model; ready only when all of it passed.

        Raises:
            ArtifactError: the model must not serve; ``AcceptanceError`` when its own tests fail.
        """
        loaded = self._loader(self._settings)
        report = run_acceptance(loaded.acceptance_sets, lambda body: answer_v1(loaded, body))
        if not report.passed:
            raise AcceptanceError(f"the model failed its acceptance checks:\n{report.describe()}")
        if report.results:
            logger.info("acceptance passed: %s", "; ".join(r.summary for r in report.results))
        self._loaded = replace(loaded, acceptance=report)
        metrics.model_loaded(
            self.name,
            loaded.version,
            sha256=loaded.artifact.sha256,
            runtime=runtime_versions(),
            seconds=loaded.load_seconds,
        )
        self.ready = True
        return True

    @property
    def loaded(self) -> LoadedModel:
        """The loaded model; raises ModelNotReady (503) before ``load()`` succeeded."""
        if self._loaded is None:
            raise ModelNotReady(self.name)
        return self._loaded

    @property
    def version(self) -> str:
        """The version every response reports as ``model_version``."""
        return self.loaded.version

    def infer_v1(self, body: Any) -> dict[str, Any]:
        """Answer a decoded v1 ``:predict`` body."""
        return answer_v1(self.loaded, body, self._observe)

    def infer_v2(self, request: InferRequest) -> InferResponse:
        """Answer a v2 InferRequest (from REST or gRPC)."""
        return answer_v2(self.loaded, self.name, request, self._observe)

    def _observe(self, batch: Batch, results: Results) -> None:
        loaded = self.loaded
        metrics.observe_predictions(
            self.name, loaded.version, loaded.signature, results, batch.n_rows
        )

    async def predict(
        self,
        payload: dict[str, Any] | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        """KServe's predict hook: a v1 dict or a v2 InferRequest in, the matching response out."""
        if response_headers is not None:
            response_headers["x-model-version"] = self.version
        if isinstance(payload, InferRequest):
            return self.infer_v2(payload)
        return self.infer_v1(payload)

    def metadata(self) -> dict[str, Any]:
        """The v2 model metadata, with versions, platform and class labels."""
        return model_metadata(self.name, self.loaded)

    def get_input_types(self) -> list[dict[str, Any]]:
        """Input tensors for KServe's own metadata path."""
        return input_types(self.loaded.signature)

    def get_output_types(self) -> list[dict[str, Any]]:
        """Output tensors for KServe's own metadata path."""
        return output_types(self.loaded.signature, with_parameters=False)
