"""A loaded model ready to answer, with its batchers; a bandit's arms; who gave a REST answer.

Picklable parts only: uvicorn workers receive the model pickled.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple

from predictor.artifact.bundle import runtime_versions
from predictor.artifact.gate import Loader, load_accepted
from predictor.artifact.loader import LoadedModel
from predictor.bandit.router import Bandit
from predictor.bandit.setup import bandit_for
from predictor.inference.batching import Batcher, ThreadBatcher
from predictor.inference.estimator import run_estimator
from predictor.inference.native import convertible
from predictor.protocol.tensors import new_id
from predictor.server import metrics
from predictor.settings import Settings

logger = logging.getLogger(__name__)


class RestAnswer(NamedTuple):
    """A v2 REST answer, and who gave it (a bandit's arm, for the headers and the metrics)."""

    body: dict[str, Any] | bytes
    json_length: int | None
    """The JSON part's length when ``body`` is a binary answer (bytes); None for JSON."""
    version: str
    """The version that answered: the model's, or the bandit arm's."""
    request_id: str | None


@dataclass(frozen=True)
class Served:
    """A loaded model and the batchers that run it (event loop, gRPC threads)."""

    loaded: LoadedModel
    batcher: Batcher
    threaded: ThreadBatcher


def served(name: str, loaded: LoadedModel, settings: Settings) -> Served:
    """``loaded`` with batchers sized by the settings, counting batches as ``name``."""
    run = functools.partial(run_estimator, loaded.engine)
    on_batch = functools.partial(metrics.observe_batch, name, loaded.version)
    max_rows = settings.batch_max_rows or batch_rows_for(loaded.estimator)
    max_wait_s = settings.batch_max_wait_ms / 1000
    return Served(
        loaded,
        Batcher(run, max_rows=max_rows, max_wait_s=max_wait_s, on_batch=on_batch),
        ThreadBatcher(run, max_rows=max_rows, max_wait_s=max_wait_s, on_batch=on_batch),
    )


TREE_BATCH_ROWS = 1024
"""Rows per call for tree ensembles: measured on the bench's forest, 64-row requests at c=32
answered 1.26-1.30 times as many requests as with 64 (their nodes leave the CPU caches between
calls; one call over many rows brings them back once)."""
BATCH_ROWS = 64
"""Rows per call for other models: measured on a linear model, 64-row requests at c=32 answered
0.72-0.83 times as many with 1,024; why was not established."""


def batch_rows_for(estimator: Any) -> int:
    """The default ``batch_max_rows`` for a model: high for tree ensembles, 64 for others."""
    return TREE_BATCH_ROWS if convertible(estimator) else BATCH_ROWS


def upgrade_in_background(
    name: str, loaded: LoadedModel, *, shadow: bool = False
) -> threading.Thread | None:
    """Convert a bare pickle for the native engine on a thread, switching when it is verified.

    The model serves meanwhile on the engine it loaded with; the metrics follow the switch (a
    ``shadow`` model has no series of its own: its switch is only logged). None when there is
    nothing to convert.
    """
    upgrade = loaded.native_upgrade
    if upgrade is None or loaded.engine.switched:
        return None

    def convert() -> None:
        before = loaded.engine.name
        if not upgrade.run(loaded.engine):
            return
        if shadow:
            logger.info("shadow model %s: now on the %s engine", loaded.version, loaded.engine.name)
        else:
            metrics.engine_switched(
                name,
                loaded.version,
                sha256=loaded.artifact.sha256,
                runtime=runtime_versions(),
                before=before,
                after=loaded.engine.name,
            )

    thread = threading.Thread(target=convert, name=f"native-engine-{name}", daemon=True)
    thread.start()
    return thread


def load_served(name: str, settings: Settings, loader: Loader) -> tuple[Served, Arms | None]:
    """Load, verify and accept the model, or every arm of a bandit.

    The first (the model, or the first arm) is the model's face: metadata, the default version.
    The arms (None without a bandit) route the requests.

    Raises:
        ArtifactError: a model must not serve.
        ConfigError: the arms cannot make a bandit.
    """
    if not settings.bandit_uris:
        return served(name, load_accepted(settings, loader=loader), settings), None
    arms = [
        served(name, load_accepted(settings.for_arm(i), loader=loader), settings)
        for i in range(len(settings.bandit_uris))
    ]
    return arms[0], Arms(arms, bandit_for(name, [a.loaded for a in arms], settings))


@dataclass(frozen=True)
class Arms:
    """A bandit's arms and the bandit that picks one per request."""

    served: list[Served]
    bandit: Bandit

    def pick(self) -> tuple[int, Served]:
        """The arm that answers this request."""
        arm = self.bandit.choose()
        return arm, self.served[arm]

    def pulled(self, arm: int, request_id: str | None) -> str:
        """Record that ``arm`` answered; the response id (a new one if the request had none)."""
        response_id = request_id or new_id()
        self.bandit.pulled(arm, response_id)
        return response_id

    def feedback(self, body: Any) -> dict[str, Any]:
        """Record a reward (see ``Bandit.feedback``)."""
        return self.bandit.feedback(body)
