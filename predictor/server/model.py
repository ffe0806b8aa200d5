"""``SklearnModel``: the KServe model that serves verified scikit-learn estimators.

``load()`` builds the strategy the settings ask for (``serving.build``: every model fetched,
verified, unpickled and accepted first) and only then sets ``ready``. Requests go through
``server.answers``: the strategy chooses the lane, the lane's model decodes, the lane answers
(cache, batch, engine), the transport's codec encodes. ``predict`` is the KServe hook for any
other KServe caller and runs the same code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from typing import Any

from kserve import Model
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.infer_type import InferRequest, InferResponse

from predictor.errors import ModelNotReadyError
from predictor.loading.gate import Loader
from predictor.loading.loader import LoadedModel, load_model
from predictor.server import answers
from predictor.server.admission import AdmissionLimit
from predictor.server.explain_answers import asks_explanation
from predictor.server.explaining import Explaining
from predictor.server.metadata import (
    drift_parameter,
    explain_outputs,
    explain_parameters,
    input_types,
    model_metadata,
    output_types,
)
from predictor.serving.build import Strategy, build_strategy
from predictor.settings import Settings


class SklearnModel(Model):  # type: ignore[misc]
    """A scikit-learn estimator (or several, by strategy) served over KServe's protocols."""

    def __init__(self, name: str, *, settings: Settings, loader: Loader = load_model) -> None:
        super().__init__(name, return_response_headers=True)
        self._settings = settings
        self._loader = loader
        self._strategy: Strategy | None = None
        """The strategy that answers; set by ``load()``."""
        self._admission = AdmissionLimit(settings.limits.max_in_flight, name)
        self.explaining = Explaining(name, settings.explain)
        """How ``:explain`` is answered for the default version; loaded by ``load()``."""
        self.draining = False
        """Set on SIGTERM: readiness turns False while requests are still served."""
        self.sticky_header = settings.bandit.sticky_header
        """The header (lower case) whose value keeps a caller on an experiment's arm; None."""

    def load(self) -> bool:
        """Load, verify and accept every model; ready only when all of it passed.

        Raises:
            ArtifactError, ConfigError: a model must not serve, or the strategy cannot be made.
        """
        self._strategy = build_strategy(self.name, self._settings, self._loader)
        self.explaining.load(self._strategy.face)
        self.ready = True
        return True

    async def explain_v1(self, body: bytes) -> answers.RestAnswer:
        """Answer a v1 ``:explain`` body (its bytes) on an explain worker (503 when all busy)."""
        document = await self.explaining.v1(body)
        return answers.RestAnswer(document, None, self.explaining.version, None)

    @property
    def strategy(self) -> Strategy:
        """The strategy; raises ModelNotReadyError (503) before ``load()`` succeeded."""
        if self._strategy is None:
            raise ModelNotReadyError(self.name)
        return self._strategy

    def start_native_engines(self) -> None:
        """Convert bare pickles for the native engine in the background, once the app is built."""
        self.strategy.start(self.name)

    def feedback(self, body: Any) -> dict[str, Any]:
        """Record a reward (``POST /v2/models/{name}/feedback``); 404 where none is taken."""
        return self.strategy.feedback(body)

    def stop(self) -> None:
        """KServe's unload hook: let background work (a shadow's queue) finish."""
        self.explaining.stop()
        if self._strategy is not None:
            self._strategy.stop()

    async def healthy(self) -> bool:
        """Readiness as KServe asks it: loaded, and not draining before a shutdown."""
        return bool(self.ready) and not self.draining

    @property
    def loaded(self) -> LoadedModel:
        """The model that speaks for this name (metadata, default version)."""
        return self.strategy.face

    @property
    def version(self) -> str:
        """The default version: the one metadata reports."""
        return self.loaded.version

    def at(self, version: str | None) -> LoadedModel:
        """The model of ``version`` (the default one when None); 404 if none answers here."""
        return (
            self.loaded
            if version is None
            else answers.lane_for(self.strategy, version, self.name).loaded
        )

    @property
    def versions(self) -> list[LoadedModel]:
        """Every model that can answer a request (a bandit's arms; the model alone otherwise)."""
        return [lane.loaded for lane in self.strategy.lanes()]

    def admitted(self) -> contextlib.AbstractContextManager[None]:
        """Count one request in flight, or refuse it at once (``OverloadedError``, 503)."""
        return self._admission.admitted()

    def infer_v1(self, body: Any, key: str | None = None) -> Awaitable[answers.RestAnswer]:
        """Answer a parsed v1 ``:predict`` body (the awaitable itself: no frame of its own)."""
        return answers.answer_v1(self.strategy, body, key)

    async def infer_v2(self, request: InferRequest) -> InferResponse:
        """Answer a v2 InferRequest (KServe's callers)."""
        return await answers.answer_v2(self.strategy, self.name, request)

    def infer_v2_rest(
        self, request: InferRequest, version: str | None = None, key: str | None = None
    ) -> Awaitable[answers.RestAnswer]:
        """Answer a v2 REST request (by ``version`` when named): JSON, or bytes if binary."""
        if asks_explanation(o.name for o in request.request_outputs or []):
            return self._explain_v2_rest(request, version)
        return answers.answer_v2_rest(self.strategy, self.name, request, version, key)

    def infer_grpc(
        self, message: pb.ModelInferRequest, key: str | None = None
    ) -> pb.ModelInferResponse:
        """Answer a gRPC ModelInfer message on the calling thread (one of gRPC's workers)."""
        if asks_explanation(o.name for o in message.outputs):
            return self.explaining.grpc(message)
        return answers.answer_grpc(self.strategy, self.name, message, key)

    async def _explain_v2_rest(
        self, request: InferRequest, version: str | None
    ) -> answers.RestAnswer:
        self.at(version)  # 404 for a version that does not answer here
        document = await self.explaining.v2_rest(request, version)
        return answers.RestAnswer(document, None, self.explaining.version, None)

    async def predict(
        self,
        payload: dict[str, Any] | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        """KServe's predict hook: a v1 dict or a v2 InferRequest in, the matching response out."""
        key = (headers or {}).get(self.sticky_header) if self.sticky_header else None
        if isinstance(payload, InferRequest):
            response = await answers.answer_v2(self.strategy, self.name, payload, key)
            version = response.model_version
        else:
            answer = await self.infer_v1(payload, key)
            response, version = answer.body, answer.version
        if response_headers is not None:
            response_headers["x-model-version"] = version
        return response

    def metadata(self, version: str | None = None) -> dict[str, Any]:
        """The v2 model metadata (of ``version``), listing every version that answers."""
        loaded = self.at(version)
        document = model_metadata(self.name, loaded, [m.version for m in self.versions])
        document["parameters"].update(drift_parameter(loaded, self._settings.drift.window_rows))
        if version is None or version == self.version:
            described = self.explaining.describe()
            document["parameters"].update(explain_parameters(described))
            document["outputs"].extend(explain_outputs(described))
        return document

    def get_input_types(self) -> list[dict[str, Any]]:
        """Input tensors for KServe's own metadata path."""
        return input_types(self.loaded.signature)

    def get_output_types(self) -> list[dict[str, Any]]:
        """Output tensors for KServe's own metadata path."""
        return output_types(self.loaded.signature, with_parameters=False)
