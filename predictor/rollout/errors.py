"""Errors of the rollout tooling, each with the exit status the CLI ends with.

RolloutError (exit 2, ``EXIT_CANNOT_RUN``: usage, configuration or API errors)
├── IsvcNotFoundError
├── ConflictError            (the object changed under us; retried by re-reading)
├── CanaryImpossibleError    (no canary in this mode / KServe version; nothing changed)
├── MetricsUnavailableError  (Prometheus unreachable or failing: analysis is inconclusive)
└── RolloutFailedError (exit 1, ``EXIT_REFUSED``: rolled back, analysis failed or inconclusive)
    └── StepTimeoutError
"""

from __future__ import annotations

from predictor.errors import EXIT_CANNOT_RUN, EXIT_REFUSED, PredictorError


class RolloutError(PredictorError):
    """Base of rollout errors; the CLI exits with ``exit_code``."""

    exit_code = EXIT_CANNOT_RUN


class IsvcNotFoundError(RolloutError):
    """The InferenceService does not exist (404)."""


class ConflictError(RolloutError):
    """The InferenceService changed since it was read (409 on its resourceVersion)."""


class CanaryImpossibleError(RolloutError):
    """This InferenceService cannot run a canary (mode, KServe version, or spec)."""


class MetricsUnavailableError(RolloutError):
    """Prometheus did not answer, or answered with a server error: no numbers to judge from."""


class RolloutFailedError(RolloutError):
    """The canary was rolled back, or analysis failed or stayed inconclusive."""

    exit_code = EXIT_REFUSED


class StepTimeoutError(RolloutFailedError):
    """Status did not show the requested step in time."""
