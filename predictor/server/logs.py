"""Logging set-up: KServe's configuration, our loggers on its handler, no per-request lines.

Called once in the server process and again in every uvicorn worker process (KServe configures
workers with its own defaults, which would bring back one access-log line per request).
"""

from __future__ import annotations

import copy
from typing import Any


def configure_logging(log_config_file: str | None, *, access_log: bool = False) -> None:
    """KServe's logging set-up, with our ``predictor`` loggers on KServe's handler.

    uvicorn's access log (one INFO line per request) is off unless ``access_log``.
    """
    from kserve import logging as kserve_logging

    if log_config_file:
        kserve_logging.configure_logging(log_config_file)
        return
    config: dict[str, Any] = copy.deepcopy(kserve_logging.KSERVE_LOG_CONFIG)
    level = config["loggers"]["kserve"]["level"]
    config["loggers"]["predictor"] = {"handlers": ["kserve"], "level": level, "propagate": False}
    if not access_log:
        # No handler at all (not just a higher level): uvicorn then skips formatting the line.
        config["loggers"]["uvicorn.access"] = {
            "handlers": [],
            "level": "WARNING",
            "propagate": False,
        }
    kserve_logging.configure_logging(config)
