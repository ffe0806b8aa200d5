"""The errors of the model repository, each carrying how it is answered (as ``predictor.errors``).

InvalidModelNameError     400  INVALID_ARGUMENT
ModelLoadFailedError      503  UNAVAILABLE          (Retry-After: the back-off left)
ModelLoadBusyError        503  RESOURCE_EXHAUSTED   (Retry-After)
ModelTooLargeError        503  UNAVAILABLE          (as a failed load)
"""

from __future__ import annotations

import math

from predictor.errors import OverloadedError, PayloadError, PredictorError


class InvalidModelNameError(PayloadError):
    """A model name that cannot name a folder of the repository (it is never echoed)."""

    def __init__(self, max_length: int) -> None:
        super().__init__(
            f"a model name is 1 to {max_length} characters of a-z, 0-9, '.', '_' and '-', "
            "starting with a letter or digit, with no '..'; the name given is not"
        )


class ModelLoadFailedError(PredictorError):
    """The model failed to load; the failure is remembered for a back-off period."""

    http_status = 503
    grpc_code = "UNAVAILABLE"

    def __init__(self, name: str, reason: str, retry_after_s: float) -> None:
        super().__init__(f"model {name} failed to load: {reason}")
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        """When the load is tried again."""
        return {"retry-after": str(max(1, math.ceil(self.retry_after_s)))}


class ModelTooLargeError(PredictorError):
    """The model alone needs more memory than the whole budget allows."""

    http_status = 503
    grpc_code = "UNAVAILABLE"


class ModelLoadBusyError(OverloadedError):
    """A load cannot start now: too many are queued, or every loaded model is in use."""

    def __init__(self, why: str) -> None:
        PredictorError.__init__(self, f"model not loaded: {why}; retry shortly")
