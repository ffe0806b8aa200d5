"""The v2 repository extension, one implementation for REST and gRPC: index, load, unload.

With a model repository (``ModelStore``) they list every model of the repository with its
state, and load and unload models of it. With one model, the index lists it, ``load`` of it
succeeds (it is loaded), and ``unload`` unloads it, as KServe does.
"""

from __future__ import annotations

from kserve.model_repository import ModelRepository
from kserve.protocol.model_repository_extension import ModelRepositoryExtension

from predictor.repository.index import READY, UNAVAILABLE, IndexEntry
from predictor.server.asgi import not_served
from predictor.server.model import SklearnModel
from predictor.server.model_store import ModelStore


async def index(registry: ModelRepository, *, ready_only: bool = False) -> list[IndexEntry]:
    """The repository index (only the READY models when ``ready_only``)."""
    if isinstance(registry, ModelStore):
        entries = registry.pool.index()
    else:
        entries = [
            IndexEntry(name, model.version, READY if await model.healthy() else UNAVAILABLE, "")
            for name, model in sorted(registry.get_models().items())
            if isinstance(model, SklearnModel)
        ]
    return [e for e in entries if e.state == READY] if ready_only else entries


async def load(
    registry: ModelRepository, extension: ModelRepositoryExtension | None, name: str
) -> None:
    """Load model ``name``.

    Raises:
        InvalidModelNameError: the name cannot name a model (400).
        ModelNotFoundError: no such model (404).
        ModelLoadFailedError, ModelLoadBusyError: it cannot be loaded (503).
    """
    if isinstance(registry, ModelStore):
        await registry.load(name)
        return
    if not isinstance(registry.get_model(name), SklearnModel):
        raise not_served(name)
    if extension is not None:
        await extension.load(name)


async def unload(
    registry: ModelRepository, extension: ModelRepositoryExtension | None, name: str
) -> None:
    """Unload model ``name``.

    Raises:
        InvalidModelNameError: the name cannot name a model (400).
        ModelNotFoundError: no such model is loaded (404).
    """
    if isinstance(registry, ModelStore):
        registry.unload(name)
        return
    if not isinstance(registry.get_model(name), SklearnModel):
        raise not_served(name)
    if extension is not None:
        await extension.unload(name)
