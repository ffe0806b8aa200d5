"""Every error this package raises on purpose, each carrying how it is answered.

An error class is API: ``http_status`` is what REST answers, ``grpc_code`` (a
``grpc.StatusCode`` name, so this module imports no transport) what gRPC answers, and
``exit_code`` what a command ends with. One REST handler and one gRPC mapper
(``predictor.server.failures``) read them; the CLIs return ``error.exit_code``. Messages say what
was expected and what arrived, and never repeat a caller's values.

Exit codes: 1 means the work was done and judged bad (a model refused by its checks, a canary
rolled back); 2 means it could not be done (usage, configuration, a store or port unavailable).

    PredictorError                 500  INTERNAL           2
    ├── PayloadError               400  INVALID_ARGUMENT
    │   └── UnsupportedOutputError 400  INVALID_ARGUMENT
    ├── BodyTooLargeError          413  RESOURCE_EXHAUSTED
    ├── ClientGoneError            499  CANCELLED
    ├── ModelNotFoundError         404  NOT_FOUND
    ├── FeedbackNotFoundError      404  NOT_FOUND
    ├── MethodNotAllowedError      405  UNIMPLEMENTED (Allow: POST)
    ├── ModelNotReadyError         503  UNAVAILABLE
    ├── StateUnavailableError      503  UNAVAILABLE (Retry-After)
    ├── OverloadedError            503  RESOURCE_EXHAUSTED (Retry-After)
    │   └── ExplainBusyError       503  RESOURCE_EXHAUSTED (Retry-After)
    ├── ExplainTooLargeError       413  RESOURCE_EXHAUSTED
    ├── ExplainWorkerLostError     503  UNAVAILABLE
    ├── ExplainUnavailableError    501  UNIMPLEMENTED
    │   └── ExplainNeedsBackgroundError 400  FAILED_PRECONDITION
    ├── ConfigError                                        2
    ├── PortInUseError                                     2
    ├── PublishError                                       2
    ├── ScoringError                                       2
    ├── CallError (EndpointUnreachableError)               2
    ├── EndpointError                                             1
    ├── TooManyRefusedRowsError                                   1
    ├── InterruptedRunError                                     130
    └── ArtifactError                                      2
        ├── UnsupportedURIError, StorageError (StorageAuthError, StorageNotFoundError),
        │   ModelFileError, ManifestError
        └── RefusedModelError                              1
            ├── DigestMismatchError, IncompatibleModelError, AcceptanceError
            ├── PickleRefusedError (--allow_pickle false)
            └── VersionExistsError
"""

from __future__ import annotations

from typing import Any, ClassVar

EXIT_REFUSED = 1
"""The work was done and its result refused: a model failed its checks, a canary rolled back."""
EXIT_CANNOT_RUN = 2
"""The work could not be done: usage, configuration, storage or the cluster stood in the way."""
EXIT_INTERRUPTED = 130
"""The work was stopped (Ctrl-C, SIGTERM) before it was done; what was finished is kept."""


class PredictorError(Exception):
    """Base for everything this package raises on purpose.

    The message is the whole text a caller or operator sees; keep it free of caller values.
    """

    http_status: ClassVar[int] = 500
    grpc_code: ClassVar[str] = "INTERNAL"
    exit_code: ClassVar[int] = EXIT_CANNOT_RUN
    retry_after: ClassVar[str | None] = None
    """Seconds a caller should wait before trying again (``Retry-After``), where that helps."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason

    def headers(self) -> dict[str, str]:
        """Extra response headers this error is answered with over REST."""
        return {} if self.retry_after is None else {"retry-after": self.retry_after}

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its class and message (it crosses from an explain worker process)."""
        return (_restored, (type(self), self.reason))


def _restored(cls: type[PredictorError], reason: str) -> PredictorError:
    error = cls.__new__(cls)
    PredictorError.__init__(error, reason)
    return error


class PayloadError(PredictorError):
    """The request body is not what the model takes; the caller's mistake."""

    http_status = 400
    grpc_code = "INVALID_ARGUMENT"


class UnsupportedOutputError(PayloadError):
    """The caller asked for an output the model cannot give (e.g. predict_proba on a regressor)."""


class BodyTooLargeError(PredictorError):
    """The request body is over the configured limit."""

    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than the {limit}-byte limit")

    def headers(self) -> dict[str, str]:
        """The rest of the body is not read, so the connection cannot be reused."""
        return {"connection": "close"}


class ClientGoneError(PredictorError):
    """The client went away before its request was whole; nobody is left to answer."""

    http_status = 499  # nginx's "client closed request"; never sent, since nobody listens
    grpc_code = "CANCELLED"

    def __init__(self) -> None:
        super().__init__("the client went away before sending the whole request")


class ModelNotFoundError(PredictorError):
    """No model of that name (or version) is served here."""

    http_status = 404
    grpc_code = "NOT_FOUND"


class MethodNotAllowedError(PredictorError):
    """An inference path asked with another method than POST (answered with ``Allow: POST``)."""

    http_status = 405
    grpc_code = "UNIMPLEMENTED"

    def __init__(self) -> None:
        super().__init__("inference takes POST; send the request body with POST")

    def headers(self) -> dict[str, str]:
        """Which method the path takes."""
        return {"Allow": "POST"}


class FeedbackNotFoundError(PredictorError):
    """Feedback names a response id this server did not give, or one that expired."""

    http_status = 404
    grpc_code = "NOT_FOUND"


class ModelNotReadyError(PredictorError):
    """The model is not loaded yet, or is draining before a shutdown."""

    http_status = 503
    grpc_code = "UNAVAILABLE"

    def __init__(self, name: str) -> None:
        super().__init__(f"model {name} is not ready")


class StateUnavailableError(PredictorError):
    """Shared state (the bandit's Redis) cannot be reached; the caller should retry."""

    http_status = 503
    grpc_code = "UNAVAILABLE"
    retry_after = "2"


class OverloadedError(PredictorError):
    """More requests are in flight than the server takes; the caller should retry."""

    http_status = 503
    grpc_code = "RESOURCE_EXHAUSTED"
    retry_after = "1"

    def __init__(self, in_flight: int, limit: int) -> None:
        super().__init__(
            f"server overloaded: {in_flight} requests in flight (limit {limit}); retry shortly"
        )


class ExplainBusyError(OverloadedError):
    """As many explanations are running as the server runs at once; the caller should retry."""

    def __init__(self, limit: int) -> None:
        PredictorError.__init__(
            self,
            f"{limit} explanation(s) are running, the most this server runs at once; retry shortly",
        )


class ExplainTooLargeError(PredictorError):
    """An explain request holds more rows than the server explains in one request."""

    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"

    def __init__(self, rows: int, limit: int) -> None:
        super().__init__(
            f"an explain request takes at most {limit} rows (PREDICTOR_EXPLAIN_MAX_ROWS), "
            f"got {rows}; send them in several requests"
        )


class ExplainWorkerLostError(PredictorError):
    """An explain worker process died mid-explanation (killed, out of memory)."""

    http_status = 503
    grpc_code = "UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__(
            "the explain worker stopped before it answered (killed, or out of memory); "
            "the next explanation starts a new one"
        )


class ExplainUnavailableError(PredictorError):
    """This model cannot be explained here; the message says why and what would change that."""

    http_status = 501
    grpc_code = "UNIMPLEMENTED"


class ExplainNeedsBackgroundError(ExplainUnavailableError):
    """The model is explained by sampling, and was served without rows to sample from."""

    http_status = 400
    grpc_code = "FAILED_PRECONDITION"


class ConfigError(PredictorError):
    """A setting is missing or malformed; raised at start-up, before anything is fetched."""


class PortInUseError(PredictorError):
    """A port the server must listen on cannot be bound; raised before anything is served."""


class PublishError(PredictorError):
    """A bundle cannot be published: its inputs are unusable, or the upload failed."""


class ScoringError(PredictorError):
    """A batch scoring run cannot be done: its input, output or resume state is not usable."""


class CallError(PredictorError):
    """``predictor call`` cannot make the call: its rows or its options are unusable."""


class EndpointUnreachableError(CallError):
    """``predictor call`` could not reach the endpoint (connection, TLS, timeout)."""


class EndpointError(PredictorError):
    """The endpoint answered the call with an error; its own words are the message."""

    exit_code = EXIT_REFUSED


class InterruptedRunError(PredictorError):
    """A batch scoring run was stopped (Ctrl-C, SIGTERM); its finished parts are kept."""

    exit_code = EXIT_INTERRUPTED


class TooManyRefusedRowsError(PredictorError):
    """A batch scoring run finished with more unscorable rows than ``--max_errors`` allows."""

    exit_code = EXIT_REFUSED


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


class RefusedModelError(ArtifactError):
    """The model was fetched and judged: it must not serve."""

    exit_code = EXIT_REFUSED


class DigestMismatchError(RefusedModelError):
    """The artifact's sha256 is not the one the deployer or the bundle pinned."""


class IncompatibleModelError(RefusedModelError):
    """The model was saved with library versions that can change its results here."""


class PickleRefusedError(RefusedModelError):
    """The model is a pickle (or ships code), and the deployer allows only files that run none."""


class AcceptanceError(RefusedModelError):
    """The model failed its own acceptance checks (end-to-end rows or a metric range)."""


class VersionExistsError(RefusedModelError):
    """The version is already published; published versions are immutable."""
