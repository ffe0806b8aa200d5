"""The model repository's pure parts and its pool, with a loader the test controls.

The pool is driven from threads and from an event loop, as the server drives it; the loader
blocks on events the test sets, so every interleaving below is made to happen, not hoped for.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from predictor.errors import ModelFileError, ModelNotFoundError
from predictor.repository.budget import Budget, Held, victims
from predictor.repository.catalog import FolderCatalog
from predictor.repository.errors import (
    InvalidModelNameError,
    ModelLoadBusyError,
    ModelLoadFailedError,
    ModelTooLargeError,
)
from predictor.repository.index import index_entries
from predictor.repository.names import checked_name, has_encoded_separator
from predictor.repository.pool import ModelPool
from predictor.repository.setup import preload

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("name", ["a", "m001", "tenant-a.v2", "x_y", "0" * 128])
def test_model_names_that_pass(name: str) -> None:
    assert checked_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "..", "a..b", ".hidden", "-x", "_x", "A", "a/b", "a\\b", "a%2fb", "a b", "é", "0" * 129],
)
def test_names_that_could_be_paths_are_refused_without_being_echoed(name: str) -> None:
    with pytest.raises(InvalidModelNameError) as refused:
        checked_name(name)
    assert refused.value.http_status == 400
    assert str(refused.value) == str(InvalidModelNameError(128))  # the same text, whatever came


def test_encoded_separators_in_a_raw_path() -> None:
    assert has_encoded_separator(b"/v2/models/a%2Fb/infer")
    assert has_encoded_separator(b"/v2/models/a%5cb/infer")
    assert not has_encoded_separator(b"/v2/models/a%252Fb/infer")  # decoded once: "%2F", a 400
    assert not has_encoded_separator(b"/v2/models/a/infer")


def test_the_budget_unloads_the_least_recently_used_idle_models_first() -> None:
    held = [Held("old", 10, busy=False), Held("busy", 10, busy=True), Held("new", 10, busy=False)]
    assert victims(Budget(max_models=3), held, models=1, size=0) == ["old"]
    assert victims(Budget(max_models=2), held, models=1, size=0) == ["old", "new"]
    assert victims(Budget(max_models=1), held, models=1, size=0) is None
    assert victims(Budget(max_bytes=35), held, models=1, size=10) == ["old"]
    assert victims(Budget(max_bytes=15), held, models=1, size=10) is None
    assert victims(Budget(), held, models=1, size=10**9) == []
    assert not Budget(max_bytes=5).admits(6) and Budget(max_bytes=5).admits(5)


def test_the_index_lists_every_model_with_its_state() -> None:
    entries = index_entries(["a", "b", "c"], {"a": "v1", "d": None}, {"b": "bad pickle"})
    assert [(e.name, e.version, e.state, e.reason) for e in entries] == [
        ("a", "v1", "READY", ""),
        ("b", "", "UNAVAILABLE", "bad pickle"),
        ("c", "", "UNAVAILABLE", "not loaded"),
        ("d", "", "LOADING", ""),
    ]


@dataclass
class Model:
    name: str
    version: str = "v1"
    stopped: bool = False


@dataclass
class Loader:
    """Loads ``Model``s; a name in ``gates`` waits for its event; a name in ``broken`` fails."""

    sizes: dict[str, int] = field(default_factory=dict)
    gates: dict[str, threading.Event] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    stops: list[tuple[str, bool]] = field(default_factory=list)

    def load(self, name: str, uri: str) -> tuple[Model, int]:
        self.calls.append(name)
        self.started.set()
        if name in self.gates:
            assert self.gates[name].wait(10)
        if name in self.broken:
            raise ModelFileError("not a model file")
        return Model(name), self.sizes.get(name, 1)

    def stop(self, name: str, model: Model, evicted: bool) -> None:
        model.stopped = True
        self.stops.append((name, evicted))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def repository(tmp_path: Path, names: list[str]) -> FolderCatalog:
    for name in names:
        (tmp_path / name).mkdir()
    return FolderCatalog(tmp_path)


def pool_of(
    tmp_path: Path, loader: Loader, budget: Budget | None = None, clock: Clock | None = None
) -> ModelPool[Model]:
    return ModelPool(
        repository(tmp_path, ["a", "b", "c"]),
        loader.load,
        loader.stop,
        budget or Budget(),
        backoff_s=30,
        max_pending=4,
        loaders=2,
        clock=clock or Clock(),
    )


def test_concurrent_first_leases_share_one_load(tmp_path: Path) -> None:
    loader = Loader(gates={"a": threading.Event()})
    pool = pool_of(tmp_path, loader)
    got: list[Model] = []

    def lease() -> None:
        with pool.leased_blocking("a") as model:
            got.append(model)

    threads = [threading.Thread(target=lease) for _ in range(8)]
    for t in threads:
        t.start()
    assert loader.started.wait(5)
    assert [e.state for e in pool.index() if e.name == "a"] == ["LOADING"]
    loader.gates["a"].set()
    for t in threads:
        t.join(5)
    assert loader.calls == ["a"]
    assert len(got) == 8 and all(m is got[0] for m in got)


def test_leases_from_the_event_loop_and_a_waiter_that_gives_up(tmp_path: Path) -> None:
    loader = Loader(gates={"a": threading.Event()})
    pool = pool_of(tmp_path, loader)

    async def scenario() -> list[str]:
        async def lease() -> str:
            async with pool.leased("a") as model:
                return model.name

        impatient = asyncio.create_task(lease())
        patient = asyncio.create_task(lease())
        await asyncio.sleep(0)
        impatient.cancel()  # a client that went away: the load goes on for the other
        with contextlib.suppress(asyncio.CancelledError):
            await impatient
        await asyncio.sleep(0)  # the cancellation's callbacks run before the load ends
        loader.gates["a"].set()
        done = await asyncio.gather(patient)
        return list(done)

    assert asyncio.run(scenario()) == ["a"]
    assert loader.calls == ["a"]
    assert [e.state for e in pool.index() if e.name == "a"] == ["READY"]


def test_a_failed_load_is_remembered_for_the_backoff_then_tried_again(tmp_path: Path) -> None:
    clock = Clock()
    loader = Loader(broken={"a"})
    pool = pool_of(tmp_path, loader, clock=clock)
    for _ in range(3):
        with pytest.raises(ModelLoadFailedError) as failed, pool.leased_blocking("a"):
            pass
        assert str(failed.value) == "model a failed to load: not a model file"
        assert failed.value.headers()["retry-after"] == "30"
    assert loader.calls == ["a"]
    assert [(e.state, e.reason) for e in pool.index() if e.name == "a"] == [
        ("UNAVAILABLE", "not a model file")
    ]
    clock.now += 31
    loader.broken.clear()
    with pool.leased_blocking("a") as model:
        assert model.name == "a"
    assert loader.calls == ["a", "a"]


def test_unknown_and_invalid_names_never_reach_the_loader(tmp_path: Path) -> None:
    loader = Loader()
    pool = pool_of(tmp_path, loader)
    (tmp_path.parent / "outside").mkdir(exist_ok=True)
    with pytest.raises(ModelNotFoundError), pool.leased_blocking("nope"):
        pass
    for name in ("..", "../outside", "a/../b"):
        with pytest.raises(InvalidModelNameError), pool.leased_blocking(name):
            pass
    assert loader.calls == []


def test_the_least_recently_used_idle_model_makes_room(tmp_path: Path) -> None:
    loader = Loader()
    pool = pool_of(tmp_path, loader, Budget(max_models=2))
    for name in ("a", "b", "a", "c"):  # "b" is the least recently used when "c" comes
        with pool.leased_blocking(name):
            pass
    assert sorted(pool.loaded_models()) == ["a", "c"]
    assert loader.stops == [("b", True)]


def test_a_model_in_use_is_never_unloaded_under_its_request(tmp_path: Path) -> None:
    loader = Loader()
    pool = pool_of(tmp_path, loader, Budget(max_models=1))
    with pool.leased_blocking("a") as model:
        with pytest.raises(ModelLoadBusyError), pool.leased_blocking("b"):
            pass
        pool.unload("a")  # asked while in use: out of service now, stopped once idle
        assert not model.stopped and pool.loaded("a") is None
    assert model.stopped and loader.stops == [("a", False)]
    with pool.leased_blocking("b"):
        pass


def test_a_memory_budget_counts_bytes_and_refuses_a_model_above_it(tmp_path: Path) -> None:
    loader = Loader(sizes={"a": 60, "b": 60, "c": 200})
    pool = pool_of(tmp_path, loader, Budget(max_bytes=100))
    with pool.leased_blocking("a"):
        pass
    with pool.leased_blocking("b"):
        pass
    assert sorted(pool.loaded_models()) == ["b"]
    with pytest.raises(ModelLoadFailedError) as refused, pool.leased_blocking("c"):
        pass
    assert "more than the whole budget" in str(refused.value)
    assert isinstance(refused.value.__cause__, ModelTooLargeError)
    assert sorted(pool.loaded_models()) == ["b"]


def test_preload_raises_what_the_model_failed_with(tmp_path: Path) -> None:
    loader = Loader(broken={"b"})
    pool = pool_of(tmp_path, loader)
    with pytest.raises(ModelFileError, match="not a model file"):
        preload(pool, ["a", "b"])
    assert sorted(pool.loaded_models()) == ["a"]
