"""KServe's own predict histogram, observed so that dashboards built on KServe's metrics work.

The one module of ``metrics`` that imports KServe; the request path's framework-free packages
(shadow, bandit) never import it.
"""

from __future__ import annotations

from kserve.metrics import EXPLAIN_HIST_TIME, POST_HIST_TIME, PRE_HIST_TIME, PREDICT_HIST_TIME

from predictor.metrics.handles import drop_series, labelled


def observe_predict_time(name: str, seconds: float) -> None:
    """One model call's time, in KServe's ``request_predict_seconds`` for model ``name``."""
    labelled(PREDICT_HIST_TIME, name).observe(seconds)


def forget_model(name: str) -> None:
    """Drop KServe's series of model ``name`` (no longer served; see ``repository.unloaded``)."""
    for histogram in (PRE_HIST_TIME, POST_HIST_TIME, PREDICT_HIST_TIME, EXPLAIN_HIST_TIME):
        drop_series(histogram, name)
