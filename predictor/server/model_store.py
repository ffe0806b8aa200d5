"""The model repository as KServe's model registry: many ``SklearnModel``s, loaded on demand.

``ModelStore`` is what the server's registry is in repository mode: ``get_model`` and
``get_models`` see the loaded models (KServe's ``/v1/models``, ``/v2/models`` and readiness
routes list those), ``load`` and ``unload`` are the repository API, and requests lease their
model from the pool (``predictor.repository.pool``) for as long as they are served. Each model is
a ``SklearnModel`` of its own, loaded with every check a single model gets (digest, version
skew, acceptance) from the settings of its folder.
"""

from __future__ import annotations

import logging
import shutil
from typing import Any

from kserve.model_repository import ModelRepository

from predictor.errors import ConfigError
from predictor.metrics import repository as metrics
from predictor.repository.footprint import model_bytes
from predictor.repository.names import checked_name
from predictor.repository.pool import ModelPool
from predictor.repository.setup import pool_for
from predictor.repository.setup import preload as load_first
from predictor.server.model import SklearnModel
from predictor.settings import Settings
from predictor.stores.base import is_bucket

logger = logging.getLogger(__name__)


class ModelStore(ModelRepository):  # type: ignore[misc]
    """KServe's model registry over a ``ModelPool`` of ``SklearnModel``s."""

    def __init__(self, pool: ModelPool[SklearnModel]) -> None:
        super().__init__(models_dir=pool.catalog.location)
        self.pool = pool

    def get_model(self, name: str) -> SklearnModel | None:
        """Model ``name`` if it is loaded (None otherwise: it is not loaded by asking)."""
        return self.pool.loaded(name)

    def get_models(self) -> dict[str, SklearnModel]:
        """The loaded models, by name."""
        return self.pool.loaded_models()

    async def is_model_ready(self, name: str) -> bool:
        """Whether model ``name`` is loaded and not draining."""
        model = self.pool.loaded(name)
        return model is not None and await model.healthy()

    def update(self, model: Any, name: str | None = None) -> None:
        """Models come from the repository's folders, not from registration.

        Raises:
            TypeError: always.
        """
        raise TypeError("a model repository loads its models from its folders")

    async def load(self, name: str) -> bool:
        """Load model ``name`` now (``POST /v2/repository/models/{name}/load``).

        Raises:
            InvalidModelNameError, ModelNotFoundError, ModelLoadFailedError, ModelLoadBusyError.
        """
        await self.pool.load(name)
        return True

    def unload(self, name: str) -> None:
        """Unload model ``name`` (the repository API, and KServe at shutdown).

        Raises:
            ModelNotFoundError: it is not loaded.
        """
        self.pool.unload(name)

    def close(self) -> None:
        """At shutdown: start no more loads."""
        self.pool.close()

    def check_name(self, name: str) -> None:
        """Refuse a name that cannot name a model of the repository.

        Raises:
            InvalidModelNameError: (400) before anything looks for it.
        """
        checked_name(name)

    def label(self, name: str) -> str:
        """The ``model`` label of a request for ``name``: itself when the repository holds it.

        Unknown names are all "unknown", so that they cannot mint series.
        """
        if self.pool.loaded(name) is not None or self.pool.catalog.holds(name):
            return name
        return "unknown"


def open_repository(settings: Settings) -> ModelStore:
    """The store of the repository the settings name, with its budget; nothing loaded yet.

    Raises:
        UnsupportedURIError: the repository is not a folder or a bucket prefix.
        StorageError: a bucket repository cannot be listed.
    """

    def load(name: str, uri: str) -> tuple[SklearnModel, int]:
        model = SklearnModel(name, settings=settings.for_model(uri))
        model.load()
        size = model_bytes(((m.estimator, m.engine), m.artifact.model_file) for m in model.versions)
        logger.info("model %s loaded: version %s, %.1f MiB", name, model.version, size / 2**20)
        return model, size

    pool = pool_for(
        settings.repository, deadline_s=settings.store_deadline_seconds, load=load, stop=unloaded
    )
    return ModelStore(pool)


def unloaded(name: str, model: SklearnModel, evicted: bool) -> None:
    """Stop a model the pool no longer serves, drop its series, delete what was downloaded."""
    model.stop()
    metrics.unloaded(name, evicted=evicted)
    for version in model.versions:
        if is_bucket(version.artifact.source.raw):
            shutil.rmtree(version.artifact.root, ignore_errors=True)


def to_serve(
    settings: Settings, *, name: str, workers: int
) -> tuple[list[SklearnModel], ModelStore | None]:
    """What the server serves: the one model, loaded; or a repository's store, preloaded.

    Raises:
        PredictorError: the model (or a preloaded one) must not serve, or cannot be loaded.
    """
    if settings.model_repository is not None:
        return [], serve_repository(settings, workers=workers)
    model = SklearnModel(name, settings=settings)
    model.load()
    return [model], None


def serve_repository(settings: Settings, *, workers: int) -> ModelStore:
    """The store to serve, with the models to preload loaded (readiness waits for them).

    Raises:
        ConfigError: more than one worker process (each would hold its own models and budget).
        PredictorError: the repository cannot be listed, or a preloaded model failed to load.
    """
    if workers > 1:
        raise ConfigError(
            "model_repository: serve it with one worker process (--workers 1); each process "
            "would load its own models within its own budget; scale with replicas instead"
        )
    store = open_repository(settings)
    preload = settings.repository.preload
    if preload:
        load_first(store.pool, preload)
        logger.info("preloaded: %s", ", ".join(preload))
    return store
