"""The acceptance gate: a model is served, scored or published only once its own checks pass.

``load_accepted`` loads the model (``loader``), answers the bundle's acceptance sets with the
code that answers v1 requests, and refuses the model when any set fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from predictor.errors import AcceptanceError
from predictor.loading.acceptance import run_acceptance
from predictor.loading.loader import LoadedModel, load_model
from predictor.protocol.v1 import answer_v1
from predictor.settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["LoadedModel", "Loader", "answer", "load_accepted"]


Loader = Callable[[Settings], LoadedModel]
"""What loads a model from the settings (``load_model``; tests pass their own)."""


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
