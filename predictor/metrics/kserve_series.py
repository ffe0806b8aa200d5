"""KServe's own predict histogram, observed so that dashboards built on KServe's metrics work.

The one module of ``metrics`` that imports KServe; the request path's framework-free packages
(shadow, bandit) never import it.
"""

from __future__ import annotations

from kserve.metrics import PREDICT_HIST_TIME

from predictor.metrics.handles import labelled


def observe_predict_time(name: str, seconds: float) -> None:
    """One model call's time, in KServe's ``request_predict_seconds`` for model ``name``."""
    labelled(PREDICT_HIST_TIME, name).observe(seconds)
