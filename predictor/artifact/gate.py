"""The acceptance gate: a model is served or published only once its own checks pass.

``load_accepted`` fetches, verifies and unpickles (``loader``), then answers the bundle's
acceptance sets with the code that answers v1 requests, and refuses the model when any fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from predictor.artifact.acceptance import run_acceptance
from predictor.artifact.loader import LoadedModel, load_model
from predictor.errors import AcceptanceError
from predictor.protocol.v1 import answer_v1
from predictor.settings import Settings

logger = logging.getLogger(__name__)

Loader = Callable[[Settings], LoadedModel]


def load_accepted(settings: Settings, *, loader: Loader = load_model) -> LoadedModel:
    """Load the model and run its acceptance sets; returns it with the report.

    Raises:
        ArtifactError: it cannot be fetched, trusted or loaded.
        AcceptanceError: it failed its own acceptance checks.
    """
    loaded = loader(settings)
    report = run_acceptance(loaded.acceptance_sets, lambda body: answer(loaded, body))
    if not report.passed:
        raise AcceptanceError(f"the model failed its acceptance checks:\n{report.describe()}")
    if report.results:
        logger.info("acceptance passed: %s", "; ".join(r.summary for r in report.results))
    return replace(loaded, acceptance=report)


def answer(loaded: LoadedModel, body: Any) -> dict[str, Any]:
    """Answer a v1 ``:predict`` body with ``loaded`` at once (no batching)."""
    return answer_v1(loaded.engine, loaded.signature, loaded.version, body)
