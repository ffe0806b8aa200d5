"""The loaded models of a repository: each loaded once, lent to requests, unloaded to make room.

A request *leases* its model for as long as it is served (``leased`` on the event loop,
``leased_blocking`` on gRPC's threads). The first lease of a model that is not loaded starts
its load on one of ``loaders`` threads; every lease that arrives meanwhile waits for that same
load. Room is made before a load starts (for its count) and once it is measured (for its
bytes): the least recently used models that no request holds are unloaded first. A model with
leases is never unloaded under them; an explicit unload of one takes it out of service at once
and stops it when its last lease ends. A failed load is remembered for ``backoff_s``: requests
in that time get the same failure at once, without another load. An explicit ``load`` tries
again at once.

State lives under one lock shared by the loop and the threads; loads, and stopping a model, run
outside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from predictor.errors import ModelNotFoundError, PredictorError
from predictor.metrics import repository as metrics
from predictor.repository.budget import Budget, Held, victims
from predictor.repository.catalog import Catalog
from predictor.repository.errors import ModelLoadBusyError, ModelLoadFailedError, ModelTooLargeError
from predictor.repository.index import IndexEntry, index_entries
from predictor.repository.names import checked_name

logger = logging.getLogger(__name__)


class Servable(Protocol):
    """What the pool holds: a model that has a version and can be stopped."""

    @property
    def version(self) -> str:
        """The version it answers with."""
        ...


M = TypeVar("M", bound=Servable)

LoadModel = Callable[[str, str], tuple[M, int]]
"""Load model ``name`` from ``uri``: the model and its size in bytes. Raises when it must not
serve."""
StopModel = Callable[[str, M, bool], None]
"""Stop a model that is no longer served (``evicted``: to make room, else asked)."""


@dataclass(eq=False)
class Slot(Generic[M]):
    """One model held by the pool (loading or loaded), and the leases on it."""

    future: Future[M]
    model: M | None = None
    size: int = 0
    leases: int = 0
    gone: bool = False
    """Out of service (unloaded or evicted): stopped once no lease holds it."""
    stopped: bool = False


@dataclass(frozen=True)
class _Failure:
    reason: str
    until: float


class ModelPool(Generic[M]):
    """The models of one repository that this process holds, within ``budget``."""

    def __init__(
        self,
        catalog: Catalog,
        load: LoadModel[M],
        stop: StopModel[M],
        budget: Budget,
        *,
        backoff_s: float,
        max_pending: int,
        loaders: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalog = catalog
        self.budget = budget
        self._load_model = load
        self._stop_model = stop
        self.backoff_s = backoff_s
        self.max_pending = max_pending
        self._clock = clock
        self._slots: OrderedDict[str, Slot[M]] = OrderedDict()
        """Held models, least recently used first."""
        self._failures: dict[str, _Failure] = {}
        self._loading = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(loaders, thread_name_prefix="model-load")

    def loaded(self, name: str) -> M | None:
        """Model ``name`` if it is loaded (no lease: for metadata, labels and readiness)."""
        slot = self._slots.get(name)
        return None if slot is None else slot.model

    def loaded_models(self) -> dict[str, M]:
        """Every loaded model, by name."""
        with self._lock:
            return {n: s.model for n, s in self._slots.items() if s.model is not None}

    @contextlib.asynccontextmanager
    async def leased(self, name: str) -> AsyncIterator[M]:
        """Model ``name`` for the ``async with`` block, loaded first if it must be."""
        slot = self.lease(name)
        try:
            yield await self.model(slot)
        finally:
            self.release(name, slot)

    @staticmethod
    async def model(slot: Slot[M]) -> M:
        """The model of a lease, once loaded.

        Raises:
            ModelLoadFailedError, ModelLoadBusyError: its load failed, or found no room.
        """
        if slot.future.done():
            return slot.future.result()
        return await asyncio.wrap_future(slot.future)

    @contextlib.contextmanager
    def leased_blocking(self, name: str) -> Iterator[M]:
        """Model ``name`` for the ``with`` block, on this thread (gRPC's)."""
        slot = self.lease(name)
        try:
            yield slot.future.result()
        finally:
            self.release(name, slot)

    async def load(self, name: str) -> M:
        """Load model ``name`` now (the repository API): a remembered failure is tried again."""
        checked_name(name)
        await asyncio.get_running_loop().run_in_executor(None, self.catalog.refresh)
        with self._lock:
            self._failures.pop(name, None)
        async with self.leased(name) as model:
            return model

    def unload(self, name: str) -> None:
        """Take model ``name`` out of service; it stops once no request holds it.

        Raises:
            ModelNotFoundError: it is not loaded.
        """
        checked_name(name)
        with self._lock:
            if name not in self._slots:
                raise ModelNotFoundError("that model is not loaded; the repository index lists it")
            slot = self._take(name)
            stop = self._stoppable(slot)
        if stop:
            self._stop(name, slot, evicted=False)

    def index(self) -> list[IndexEntry]:
        """Every model of the repository and every model held, with its state."""
        now = self._clock()
        with self._lock:
            versions = {
                n: None if s.model is None else s.model.version for n, s in self._slots.items()
            }
            failures = {n: f.reason for n, f in self._failures.items() if f.until > now}
        return index_entries(self.catalog.names(), versions, failures)

    def close(self) -> None:
        """Stop loading; the models themselves are unloaded one by one by the server."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def lease(self, name: str) -> Slot[M]:
        """Claim model ``name`` for one request, starting its load if it must; ``release`` after.

        The request path's form of ``leased``: ``await ModelPool.model(slot)`` is the model.

        Raises:
            InvalidModelNameError, ModelNotFoundError, ModelLoadFailedError, ModelLoadBusyError.
        """
        slot = self._slots.get(name)  # a name held was checked when it was loaded
        if slot is None and not self.catalog.holds(checked_name(name)):
            raise ModelNotFoundError(
                "no model of that name in the repository; POST /v2/repository/index lists them"
            )
        evicted: list[tuple[str, Slot[M]]] = []
        with self._lock:
            slot = self._slots.get(name)
            if slot is None:
                slot, evicted = self._start_load(name)
            slot.leases += 1
            self._slots.move_to_end(name)
        for victim, held in evicted:
            self._stop(victim, held, evicted=True)
        return slot

    def _start_load(self, name: str) -> tuple[Slot[M], list[tuple[str, Slot[M]]]]:
        """(Under the lock.) A slot for ``name`` whose load has started, and who made room."""
        failure = self._failures.get(name)
        now = self._clock()
        if failure is not None and failure.until > now:
            raise ModelLoadFailedError(name, failure.reason, failure.until - now)
        if self._loading >= self.max_pending:
            raise ModelLoadBusyError(f"{self._loading} loads are under way, the most at once")
        chosen = victims(self.budget, self._held(), models=1, size=0)
        if chosen is None:
            raise ModelLoadBusyError("every loaded model is serving requests")
        evicted = [(victim, self._take(victim)) for victim in chosen]
        slot: Slot[M] = Slot(Future())
        slot.future.set_running_or_notify_cancel()  # a waiter that gives up cannot cancel it
        self._slots[name] = slot
        self._loading += 1
        self._executor.submit(self._load, name, slot)
        return slot, evicted

    def _load(self, name: str, slot: Slot[M]) -> None:
        """(A loader thread.) Load, measure, make room, and tell every waiter."""
        try:
            model, size = self._load_model(name, self.catalog.uri_of(name))
        except Exception as e:  # any failure: remembered, and answered to every waiter
            self._failed(name, slot, e)
            return
        if not self.budget.admits(size):
            self._stop_model(name, model, False)
            too_large = ModelTooLargeError(
                f"the model takes {size / 2**20:.1f} MiB, more than the whole budget of "
                f"{(self.budget.max_bytes or 0) / 2**20:.1f} MiB (PREDICTOR_MODELS_MEMORY_MB)"
            )
            self._failed(name, slot, too_large)
            return
        with self._lock:
            self._loading -= 1
            others = [h for h in self._held() if h.name != name]
            chosen = [] if slot.gone else victims(self.budget, others, models=1, size=size)
            if chosen is None:
                self._take(name)
            else:
                evicted = [(victim, self._take(victim)) for victim in chosen]
                slot.model, slot.size = model, size
                self._update_gauges()
                stop_now = self._stoppable(slot)  # unloaded while it loaded, and nobody waits
        if chosen is None:
            self._stop_model(name, model, False)
            slot.future.set_exception(ModelLoadBusyError("every other loaded model is in use"))
            return
        metrics.loaded()
        for victim, held in evicted:
            self._stop(victim, held, evicted=True)
        slot.future.set_result(model)
        if stop_now:
            self._stop(name, slot, evicted=False)

    def _failed(self, name: str, slot: Slot[M], error: Exception) -> None:
        if isinstance(error, PredictorError):
            reason = str(error)
            logger.warning("model %s failed to load: %s", name, reason)
        else:
            reason = f"unexpected {type(error).__name__} while loading (see the server log)"
            logger.error("model %s failed to load", name, exc_info=error)
        with self._lock:
            self._loading -= 1
            if self._slots.get(name) is slot:
                del self._slots[name]
            self._failures[name] = _Failure(reason, self._clock() + self.backoff_s)
        metrics.load_failed(name)
        failed = ModelLoadFailedError(name, reason, self.backoff_s)
        failed.__cause__ = error  # what a start-up that preloads it ends with
        slot.future.set_exception(failed)

    def release(self, name: str, slot: Slot[M]) -> None:
        """End a request's lease (a model unloaded meanwhile stops once none holds it)."""
        with self._lock:
            slot.leases -= 1
            stop = self._stoppable(slot)
        if stop:
            self._stop(name, slot, evicted=False)

    def _held(self) -> list[Held]:
        """(Under the lock.) What the budget sees, least recently used first."""
        return [
            Held(n, s.size, busy=s.leases > 0 or s.model is None) for n, s in self._slots.items()
        ]

    def _take(self, name: str) -> Slot[M]:
        """(Under the lock.) Take ``name`` out of service."""
        slot = self._slots.pop(name)
        slot.gone = True
        self._update_gauges()
        return slot

    def _stoppable(self, slot: Slot[M]) -> bool:
        """(Under the lock.) Whether ``slot`` is to be stopped now; if so, it is marked stopped."""
        if slot.gone and slot.leases == 0 and slot.model is not None and not slot.stopped:
            slot.stopped = True
            return True
        return False

    def _stop(self, name: str, slot: Slot[M], *, evicted: bool) -> None:
        if slot.model is None:
            return  # still loading: stopped when it ends
        slot.stopped = True
        logger.info("model %s unloaded%s", name, " to make room" if evicted else "")
        self._stop_model(name, slot.model, evicted)

    def _update_gauges(self) -> None:
        """(Under the lock.) Publish how many models, and bytes, are held."""
        held = [s for s in self._slots.values() if s.model is not None]
        metrics.held(len(held), sum(s.size for s in held))
