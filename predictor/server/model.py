"""``SklearnModel``: the KServe model that serves one verified scikit-learn estimator.

``load()`` fetches, verifies and unpickles (see ``loader``), runs the bundle's acceptance sets
(``artifact.gate``), and only then sets ``ready``.
``infer_v1`` and ``infer_v2_rest`` answer our REST routes on the event loop, ``infer_grpc``
answers gRPC on gRPC's worker threads; both batch concurrent requests (see ``batching``).
``predict`` is the KServe hook for any other KServe caller and runs the same code.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from kserve import Model
from kserve.metrics import PREDICT_HIST_TIME
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.infer_type import InferRequest, InferResponse

from predictor.artifact.bundle import runtime_versions
from predictor.artifact.gate import Loader
from predictor.artifact.loader import LoadedModel, load_model
from predictor.errors import FeedbackNotFoundError, ModelNotReadyError
from predictor.inference.batch import Batch, Results
from predictor.inference.cache import PredictionCache
from predictor.protocol.v1 import decode_v1, encode_v1
from predictor.protocol.v2 import decode_v2, encode_v2, encode_v2_json, wants_binary
from predictor.protocol.v2_grpc import decode_grpc, encode_v2_grpc
from predictor.server import metrics
from predictor.server.admission import AdmissionLimit
from predictor.server.metadata import input_types, model_metadata, output_types
from predictor.server.serving import (
    Arms,
    RestAnswer,
    Served,
    load_served,
    upgrade_in_background,
)
from predictor.settings import Settings
from predictor.shadow.runner import ShadowRunner
from predictor.shadow.setup import shadow_runner
from predictor.shadow.targets import ShadowModel

logger = logging.getLogger(__name__)


class SklearnModel(Model):  # type: ignore[misc]
    """A scikit-learn estimator served over KServe's v1 and v2 protocols."""

    def __init__(self, name: str, *, settings: Settings, loader: Loader = load_model) -> None:
        super().__init__(name, return_response_headers=True)
        self._settings = settings
        self._loader = loader
        self._served: Served | None = None
        """The model (a bandit's first arm) and its batchers; set by ``load()``."""
        self._cache = PredictionCache(settings.cache_size)
        self._admission = AdmissionLimit(settings.max_in_flight, name)
        self._shadow: ShadowRunner | None = None
        self._arms: Arms | None = None
        self.draining = False
        """Set on SIGTERM: readiness turns False while requests are still served."""

    def load(self) -> bool:
        """Fetch, verify, unpickle and accept the model; ready only when all of it passed.

        Raises:
            ArtifactError: the model must not serve; ``AcceptanceError`` when its own tests fail.
        """
        self._served, self._arms = load_served(self.name, self._settings, self._loader)
        loaded = self._served.loaded
        self._cache = PredictionCache(self._settings.cache_size)
        self._shadow = shadow_runner(self.name, loaded, self._settings, loader=self._loader)
        metrics.model_loaded(
            self.name,
            loaded.version,
            sha256=loaded.artifact.sha256,
            runtime=runtime_versions(),
            seconds=loaded.load_seconds,
            engine=loaded.engine.name,
        )
        self.ready = True
        return True

    def start_native_engines(self) -> None:
        """Convert bare pickles for the native engine in the background (see ``engine_choice``).

        The server calls it once the model is ready and its app is built, in each process that
        serves (``model_server.start_native_engines``).
        """
        arms = self._arms.served if self._arms is not None else []
        for loaded in [self.loaded] + [a.loaded for a in arms[1:]]:
            upgrade_in_background(self.name, loaded)
        shadow = self._shadow.target if self._shadow is not None else None
        if isinstance(shadow, ShadowModel):
            upgrade_in_background(self.name, shadow.loaded, shadow=True)

    def _arm(self) -> tuple[int | None, LoadedModel]:
        """The arm that answers this request (None without a bandit) and its model."""
        if self._arms is None:
            return None, self.loaded
        arm, chosen = self._arms.pick()
        return arm, chosen.loaded

    def _pulled(self, arm: int | None, request_id: str | None) -> str | None:
        """Record which arm answered; the response id (a new one when the request had none)."""
        if arm is None or self._arms is None:
            return request_id
        return self._arms.pulled(arm, request_id)

    @property
    def is_bandit(self) -> bool:
        """Whether several arms answer, each response naming its own version."""
        return self._arms is not None

    def feedback(self, body: Any) -> dict[str, Any]:
        """Record a bandit reward (``POST /v2/models/{name}/feedback``).

        Raises:
            FeedbackNotFoundError: no bandit here, or no response of that id (404).
            PayloadError: the body is not ``{"id": ..., "reward": 0..1}`` (400).
        """
        if self._arms is None:
            raise FeedbackNotFoundError(
                "this model is not a bandit; feedback is for --bandit_model_uris"
            )
        return self._arms.feedback(body)

    def stop(self) -> None:
        """KServe's unload hook: let the shadow finish what is queued and close its log."""
        if self._shadow is not None:
            self._shadow.stop()

    async def healthy(self) -> bool:
        """Readiness as KServe asks it: loaded, and not draining before a shutdown."""
        return bool(self.ready) and not self.draining

    @property
    def loaded(self) -> LoadedModel:
        """The loaded model; raises ModelNotReadyError (503) before ``load()`` succeeded."""
        if self._served is None:
            raise ModelNotReadyError(self.name)
        return self._served.loaded

    @property
    def version(self) -> str:
        """The version every response reports as ``model_version``."""
        return self.loaded.version

    def admitted(self) -> contextlib.AbstractContextManager[None]:
        """Count one request in flight, or refuse it at once when the limit is reached.

        Raises:
            OverloadedError: ``PREDICTOR_MAX_IN_FLIGHT`` requests are already being served.
        """
        return self._admission.admitted()

    async def infer_v1(self, body: Any) -> dict[str, Any]:
        """Answer a decoded v1 ``:predict`` body (batched with concurrent requests)."""
        arm, loaded = self._arm()
        batch = decode_v1(body, loaded.signature, frame=loaded.engine.takes_frames)
        results = await self._results(loaded, batch, None, arm)
        answer = encode_v1(results, batch.outputs, loaded.signature, loaded.version)
        if arm is not None:
            answer["id"] = self._pulled(arm, None)  # the id feedback names
        return answer

    async def infer_v2(self, request: InferRequest) -> InferResponse:
        """Answer a v2 InferRequest from REST or gRPC (batched with concurrent requests)."""
        loaded, batch, results = await self._answer_v2(request)
        return self._response(loaded, batch, results, request)

    def infer_grpc(self, message: pb.ModelInferRequest) -> pb.ModelInferResponse:
        """Answer a gRPC ModelInfer message on the calling thread (one of gRPC's workers).

        Batched with the requests of the other gRPC threads; raw contents in, raw contents out,
        as KServe does.
        """
        arm, loaded = self._arm()
        frame = loaded.engine.takes_frames
        if message.raw_input_contents:
            request = InferRequest.from_grpc(message)
            batch = decode_v2(request, loaded.signature, frame=frame)
            results = self._results_blocking(loaded, batch, message.id, arm)
            request.id = self._pulled(arm, request.id)
            return self._response(loaded, batch, results, request).to_grpc()
        batch = decode_grpc(message, loaded.signature, frame=frame)
        results = self._results_blocking(loaded, batch, message.id, arm)
        return encode_v2_grpc(
            results,
            batch.outputs,
            loaded.signature,
            model_name=self.name,
            version=loaded.version,
            request_id=self._pulled(arm, message.id) or "",
        )

    async def infer_v2_rest(self, request: InferRequest) -> RestAnswer:
        """Answer a v2 REST request: a JSON document, or bytes and the JSON length if binary."""
        if wants_binary(request):
            response = await self.infer_v2(request)
            body, json_length = response.to_rest()
            return RestAnswer(
                body, json_length, response.model_version or self.version, response.id
            )
        loaded, batch, results = await self._answer_v2(request)
        document = encode_v2_json(
            results,
            batch.outputs,
            loaded.signature,
            model_name=self.name,
            version=loaded.version,
            request_id=request.id,
        )
        return RestAnswer(document, None, loaded.version, request.id)

    def _response(
        self, loaded: LoadedModel, batch: Batch, results: Results, request: InferRequest
    ) -> InferResponse:
        """The v2 InferResponse for ``request`` (for binary outputs and KServe's callers)."""
        return encode_v2(
            results,
            batch.outputs,
            loaded.signature,
            model_name=self.name,
            version=loaded.version,
            request=request,
        )

    async def _answer_v2(self, request: InferRequest) -> tuple[LoadedModel, Batch, Results]:
        """Decode a v2 request and compute its outputs, ready for any of the v2 encoders."""
        arm, loaded = self._arm()
        batch = decode_v2(request, loaded.signature, frame=loaded.engine.takes_frames)
        results = await self._results(loaded, batch, request.id, arm)
        if arm is not None:
            request.id = self._pulled(arm, request.id)
        return loaded, batch, results

    async def _results(
        self,
        loaded: LoadedModel,
        batch: Batch,
        request_id: str | None = None,
        arm: int | None = None,
    ) -> Results:
        key, results = self._cached(loaded, batch)
        if results is None:
            started = time.perf_counter()
            results = await self._batchers(arm).batcher.submit(batch)
            self._computed(loaded, batch, key, results, started, request_id)
        return results

    def _results_blocking(
        self,
        loaded: LoadedModel,
        batch: Batch,
        request_id: str | None = None,
        arm: int | None = None,
    ) -> Results:
        """``_results`` for gRPC's worker threads: batched with them, on the calling thread."""
        key, results = self._cached(loaded, batch)
        if results is None:
            started = time.perf_counter()
            results = self._batchers(arm).threaded.submit(batch)
            self._computed(loaded, batch, key, results, started, request_id)
        return results

    def _batchers(self, arm: int | None) -> Served:
        """The batchers of the arm that answers (the model's own without a bandit)."""
        if arm is not None and self._arms is not None:
            return self._arms.served[arm]
        assert self._served is not None  # set by load(), before any request is let in
        return self._served

    def _cached(self, loaded: LoadedModel, batch: Batch) -> tuple[Any, Results | None]:
        """The cache key for ``batch`` (None if not cacheable) and its cached results, if any."""
        key = self._cache.key(loaded.version, batch.outputs, batch.features)
        if key is None:
            return None, None
        cached = self._cache.get(key)
        metrics.observe_cache(self.name, loaded.version, hit=cached is not None)
        return key, cached

    def _computed(
        self,
        loaded: LoadedModel,
        batch: Batch,
        key: Any,
        results: Results,
        started: float,
        request_id: str | None,
    ) -> None:
        """Record freshly computed results: cache, time and count them; offer them to a shadow."""
        # KServe's own predict histogram, so dashboards built on KServe's metrics keep working.
        metrics.labelled(PREDICT_HIST_TIME, self.name).observe(time.perf_counter() - started)
        if key is not None:
            self._cache.put(key, results)
        metrics.observe_predictions(
            self.name, loaded.version, loaded.signature, results, batch.n_rows
        )
        if self._shadow is not None:
            self._shadow.offer(request_id, batch.features, batch.n_rows, results)

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
            return await self.infer_v2(payload)
        return await self.infer_v1(payload)

    def metadata(self) -> dict[str, Any]:
        """The v2 model metadata, with versions, platform and class labels."""
        return model_metadata(self.name, self.loaded)

    def get_input_types(self) -> list[dict[str, Any]]:
        """Input tensors for KServe's own metadata path."""
        return input_types(self.loaded.signature)

    def get_output_types(self) -> list[dict[str, Any]]:
        """Output tensors for KServe's own metadata path."""
        return output_types(self.loaded.signature, with_parameters=False)
