"""``SklearnModel``: the KServe model that serves one verified scikit-learn estimator.

``load()`` fetches, verifies and unpickles (see ``loader``) and only then sets ``ready``.
``infer_v1`` / ``infer_v2`` are the request path shared by our REST routes; ``predict`` is the
KServe hook, used by KServe's gRPC servicer and any KServe caller, and runs the same code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from kserve import Model
from kserve.errors import ModelNotReady
from kserve.protocol.infer_type import InferRequest, InferResponse

from predictor.config import Settings
from predictor.decode import Batch, decode_v1, decode_v2
from predictor.encode import Results, encode_v1, encode_v2
from predictor.errors import PayloadError
from predictor.loader import LoadedModel, load_model
from predictor.metadata import input_types, model_metadata, output_types
from predictor.signature import PREDICT, PREDICT_PROBA

logger = logging.getLogger(__name__)

Loader = Callable[[Settings], LoadedModel]


class SklearnModel(Model):  # type: ignore[misc]
    """A scikit-learn estimator served over KServe's v1 and v2 protocols."""

    def __init__(self, name: str, *, settings: Settings, loader: Loader = load_model) -> None:
        super().__init__(name, return_response_headers=True)
        self._settings = settings
        self._loader = loader
        self._loaded: LoadedModel | None = None

    def load(self) -> bool:
        """Fetch, verify and unpickle the model; ready only when all of it passed."""
        self._loaded = self._loader(self._settings)
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
        loaded = self.loaded
        batch = decode_v1(body, loaded.signature)
        results = self._run(batch)
        return encode_v1(results, batch.outputs, loaded.signature, loaded.version)

    def infer_v2(self, request: InferRequest) -> InferResponse:
        """Answer a v2 InferRequest (from REST or gRPC)."""
        loaded = self.loaded
        batch = decode_v2(request, loaded.signature)
        results = self._run(batch)
        return encode_v2(
            results,
            batch.outputs,
            loaded.signature,
            model_name=self.name,
            version=loaded.version,
            request=request,
        )

    def _run(self, batch: Batch) -> Results:
        estimator = self.loaded.estimator
        results: Results = {}
        try:
            for name in batch.outputs:
                if name == PREDICT:
                    results[name] = np.asarray(estimator.predict(batch.features))
                elif name == PREDICT_PROBA:
                    results[name] = np.asarray(estimator.predict_proba(batch.features))
        except ValueError as e:
            # scikit-learn's own input validation (e.g. an unknown category); the caller's data.
            reason = " ".join(str(e).split())[:200]
            raise PayloadError(f"the model rejected the input: {reason}") from e
        return results

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
