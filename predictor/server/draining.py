"""The REST server's way out: on SIGTERM, stop being ready, read and answer what came, then stop.

uvicorn's own graceful shutdown closes the listening socket and every connection whose request it
has not read yet: under load, requests already sent (connections the kernel accepted, bytes in
their buffers) are dropped without an answer. Here the first signal instead

1. reports the models not ready (so a load balancer stops sending traffic),
2. keeps serving for ``delay_s`` (the time a cluster takes to notice; 0 outside one),
3. then keeps serving until no connection was opened and no request read for ``quiet_s`` and
   at least ``QUIET_TURNS`` turns of the event loop (a loop busy with a model call reads
   nothing, which is not quiet): what was sent before the signal has then been read, and each
   request is answered or refused with a clean 503 (at most ``MOST_QUIET_S`` more, for a client
   that never stops),
4. and only then lets uvicorn stop listening and finish the requests in flight.

A second signal stops at once, as uvicorn does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from kserve.protocol.rest.server import _RefreshingServer

from predictor.metrics import record as metrics
from predictor.server.model import SklearnModel

logger = logging.getLogger(__name__)

MOST_QUIET_S = 30.0
"""The longest the server waits for quiet after the delay."""
POLL_S = 0.05
QUIET_TURNS = 5
"""Polls in a row that must see nothing new: each comes after the loop has polled its sockets."""


class DrainingServer(_RefreshingServer):  # type: ignore[misc]
    """KServe's uvicorn server, which on SIGTERM drains what was sent before it stops."""

    def __init__(self, config: Any, *, delay_s: float, quiet_s: float, registry: Any) -> None:
        super().__init__(config)
        self.delay_s = delay_s
        self.quiet_s = quiet_s
        self.registry = registry
        self.draining = False
        self.front: Callable[[Any], Any] | None = None
        """Wraps the loaded app before serving (``PredictorRESTServer`` sets it)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None

    async def serve(self, sockets: Any = None) -> None:
        """Load the app, put ``front`` before it, and serve as uvicorn does."""
        if not self.config.loaded:
            self.config.load()
        if self.front is not None:
            self.config.loaded_app = self.front(self.config.loaded_app)
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: Any) -> None:
        """First signal: drain, then exit; any later one: uvicorn's own handling."""
        if self.draining:
            super().handle_exit(sig, frame)
            return
        self.draining = True
        for model in self.registry.get_models().values():
            if isinstance(model, SklearnModel):
                model.draining = True
                metrics.model_draining(model.name)
        logger.info(
            "draining: not ready, serving for %.1fs, then until %.1fs pass without a new request",
            self.delay_s,
            self.quiet_s,
        )
        if self._loop is None:  # not serving yet: nothing to drain
            super().handle_exit(sig, frame)
            return
        self._loop.call_soon_threadsafe(self._start_draining, sig, frame)

    def _start_draining(self, sig: int, frame: Any) -> None:
        assert self._loop is not None
        self._drain = self._loop.create_task(self._drain_then_exit(sig, frame))

    async def _drain_then_exit(self, sig: int, frame: Any) -> None:
        await asyncio.sleep(self.delay_s)
        state = self.server_state
        seen = (state.total_requests, set(map(id, state.connections)))
        started = quiet_since = time.monotonic()
        turns = 0
        while turns < QUIET_TURNS or time.monotonic() - quiet_since < self.quiet_s:
            if time.monotonic() - started > MOST_QUIET_S:
                logger.warning("draining: still busy after %.0fs; stopping", MOST_QUIET_S)
                break
            await asyncio.sleep(POLL_S)
            now = (state.total_requests, set(map(id, state.connections)))
            turns += 1
            if now[0] != seen[0] or not now[1] <= seen[1]:
                quiet_since, turns = time.monotonic(), 0
            seen = now
        super().handle_exit(sig, frame)
