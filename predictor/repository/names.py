"""Model names are not paths: a name is checked before it becomes a folder of the repository.

A name comes from a URL or a gRPC field and becomes ``<repository>/<name>``. Only names of
``[a-z0-9][a-z0-9._-]*`` (at most 128 characters) with no ``..`` pass: no slash, backslash or
percent sign (an encoded slash, decoded once or twice), no leading dot, nothing that could
leave the repository or list it.
"""

from __future__ import annotations

import re

from predictor.repository.errors import InvalidModelNameError

MAX_LENGTH = 128
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")

ENCODED_SEPARATORS = (b"%2f", b"%5c")
"""A slash or backslash, percent-encoded (compared in lower case)."""


def checked_name(name: str) -> str:
    """``name``, when it is a model name the repository may hold.

    Raises:
        InvalidModelNameError: it is not (400); the message does not repeat it.
    """
    if len(name) > MAX_LENGTH or not _NAME.fullmatch(name) or ".." in name:
        raise InvalidModelNameError(MAX_LENGTH)
    return name


def has_encoded_separator(raw_path: bytes) -> bool:
    """Whether a request's raw path holds a percent-encoded slash or backslash.

    Such a path names a model with a separator in it once decoded; it is refused before
    routing, so that it cannot reach another route either.
    """
    lowered = raw_path.lower()
    return any(encoded in lowered for encoded in ENCODED_SEPARATORS)
