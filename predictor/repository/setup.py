"""A model repository's pool as the settings describe it, and the models loaded before serving.

``pool_for`` builds the pool with its catalog and budget; ``preload`` loads ``--preload``.
"""

from __future__ import annotations

from collections.abc import Iterable

from predictor.errors import PredictorError
from predictor.repository.budget import Budget
from predictor.repository.catalog import catalog_for
from predictor.repository.errors import ModelLoadFailedError
from predictor.repository.pool import LoadModel, M, ModelPool, Slot, StopModel
from predictor.sections import Repository

CATALOG_REFRESH_SECONDS = 30.0
"""How stale a bucket repository's listing may be before an unknown name lists it again."""


def pool_for(
    chosen: Repository, *, deadline_s: float, load: LoadModel[M], stop: StopModel[M]
) -> ModelPool[M]:
    """The pool of the repository ``chosen`` names, with its budget; nothing loaded yet.

    Raises:
        UnsupportedURIError: the repository is not a folder or a bucket prefix.
        StorageError: a bucket repository cannot be listed.
    """
    assert chosen.model_repository is not None  # repository mode
    memory = chosen.models_memory_mb
    budget = Budget(chosen.max_loaded_models, None if memory is None else int(memory * 2**20))
    catalog = catalog_for(
        chosen.model_repository, deadline_s=deadline_s, refresh_s=CATALOG_REFRESH_SECONDS
    )
    return ModelPool(
        catalog,
        load,
        stop,
        budget,
        backoff_s=chosen.load_failure_backoff_seconds,
        max_pending=chosen.max_pending_loads,
        loaders=chosen.model_loaders,
    )


def preload(pool: ModelPool[M], names: Iterable[str]) -> None:
    """Load ``names`` now, concurrently, and return once all are loaded.

    Raises:
        PredictorError: one failed to load (the first one asked, of those that failed): the
            error it failed with (a refused model's ``RefusedModelError``, for instance).
    """
    leases: list[tuple[str, Slot[M]]] = []
    try:
        for name in names:
            leases.append((name, pool.lease(name)))
        for _, lease in leases:
            try:
                lease.future.result()
            except ModelLoadFailedError as e:
                cause = e.__cause__
                raise cause if isinstance(cause, PredictorError) else e from None
    finally:
        for name, lease in leases:
            pool.release(name, lease)
