"""Every error this package raises on purpose.

The tree has two halves. Request-time errors subclass KServe's own exceptions, so KServe's
REST handlers and gRPC interceptor map each to exactly one status (``InvalidInput`` to 400 /
``INVALID_ARGUMENT``, ``ModelNotFound`` to 404 / ``NOT_FOUND``); we add no handlers of our own
for them. Start-up errors (``ArtifactError`` and below) never reach a client: ``__main__``
prints their one-line message and exits non-zero, so a bad model never becomes Ready.

    PredictorError
    ├── PayloadError (kserve InvalidInput → 400)
    │   └── UnsupportedOutputError
    ├── OverloadedError (503 with Retry-After)
    ├── ConfigError
    └── ArtifactError
        ├── UnsupportedURIError
        ├── StorageError
        │   ├── StorageAuthError
        │   └── StorageNotFoundError
        ├── ModelFileError
        ├── ManifestError
        ├── DigestMismatchError
        ├── IncompatibleModelError
        └── AcceptanceError
"""

from __future__ import annotations

from kserve.errors import InvalidInput


class PredictorError(Exception):
    """Base for everything this package raises on purpose."""


class PayloadError(PredictorError, InvalidInput):  # type: ignore[misc]
    """The request body is not what the model takes; the caller's mistake (HTTP 400)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class UnsupportedOutputError(PayloadError):
    """The caller asked for an output the model cannot give (e.g. predict_proba on a regressor)."""


class OverloadedError(PredictorError):
    """More requests are in flight than the server takes; the caller should retry (HTTP 503)."""

    def __init__(self, in_flight: int, limit: int) -> None:
        super().__init__(
            f"server overloaded: {in_flight} requests in flight (limit {limit}); retry shortly"
        )


class ConfigError(PredictorError):
    """A setting is missing or malformed; raised at start-up, before anything is fetched."""


class PortInUseError(PredictorError):
    """A port the server must listen on cannot be bound; raised before anything is served."""


class ArtifactError(PredictorError):
    """The model artifact cannot be fetched, trusted or loaded; the server must not start."""


class UnsupportedURIError(ArtifactError):
    """The model URI has a scheme or shape we do not serve from."""


class StorageError(ArtifactError):
    """Fetching from storage failed (after retries, for transient faults)."""


class StorageAuthError(StorageError):
    """Storage refused us: no credentials, or credentials without permission."""


class StorageNotFoundError(StorageError):
    """The bucket, object or prefix does not exist."""


class ModelFileError(ArtifactError):
    """The fetched location holds no model file, several, or one that does not unpickle."""


class ManifestError(ArtifactError):
    """The bundle's model.json is invalid or does not describe the model it ships."""


class DigestMismatchError(ArtifactError):
    """The artifact's sha256 is not the one the deployer or the bundle pinned."""


class IncompatibleModelError(ArtifactError):
    """The model was saved with library versions that can change its results here."""


class AcceptanceError(ArtifactError):
    """The model failed its own acceptance checks (end-to-end rows or a metric range)."""
