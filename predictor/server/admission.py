"""How many inference requests a model serves at once: more are refused at once, never queued.

Shared by the event loop (REST) and gRPC's worker threads, so the count is kept under a lock.
"""

from __future__ import annotations

import threading
from typing import Any

from predictor.errors import OverloadedError
from predictor.metrics import record as metrics


class AdmissionLimit:
    """Counts requests in flight against ``limit``; refusals are counted per model."""

    def __init__(self, limit: int, model: str = "") -> None:
        self.limit = limit
        self.model = model
        self.in_flight = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Sent to uvicorn worker processes before serving, with nothing in flight.
        return {"limit": self.limit, "model": self.model}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["limit"], state["model"])  # type: ignore[misc]

    def admitted(self) -> AdmissionLimit:
        """Count one request in flight for the ``with`` block, or refuse it at the limit.

        Raises:
            OverloadedError: (on entering) ``limit`` requests are being served.
        """
        return self

    def __enter__(self) -> None:
        with self._lock:
            if self.in_flight >= self.limit:
                metrics.overload_refused(self.model)
                raise OverloadedError(self.in_flight, self.limit)
            self.in_flight += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.in_flight -= 1
