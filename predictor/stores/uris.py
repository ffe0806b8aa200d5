"""Model and data locations as URIs: parsing and checking, nothing else (pure).

``gs://bucket/path`` (``#<generation>`` pins a GCS object), ``s3://bucket/path``,
``models:/NAME/VERSION`` and ``models:/NAME@ALIAS`` (MLflow's registry), ``file:///path`` and
plain paths. Which store serves a scheme is ``stores.base``'s business.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from predictor.errors import UnsupportedURIError

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
"""File endings we load with joblib (pickles: loading them runs code)."""
MODEL_SUFFIXES = (*PICKLE_SUFFIXES, ".skops")
"""Model file endings: pickles, and skops files; a folder must hold exactly one such file."""

PINNED_IN_PREFIX = "model.json"
"""On a gs:// prefix, ``#<generation>`` pins this object (a bundle's manifest, which pins the rest
by sha256)."""


@dataclass(frozen=True)
class ModelURI:
    """A parsed model location: an object or prefix in a bucket, a registry model, a local path."""

    raw: str
    scheme: str
    """``gs``, ``s3``, ``models`` (an MLflow registry) or ``file``."""
    bucket: str = ""
    path: str = ""
    """Object name or prefix for ``gs`` and ``s3``; the registered model's name for ``models``;
    absolute path for ``file``."""
    generation: int | None = None
    """GCS generation pinned with ``#<generation>``."""
    version: str | None = None
    """The registry version (``models:/NAME/VERSION``)."""
    alias: str | None = None
    """The registry alias (``models:/NAME@ALIAS``), resolved to a version at fetch time."""

    @property
    def is_prefix(self) -> bool:
        """True when a bucket URI names a folder (prefix) rather than one object."""
        return self.scheme in ("gs", "s3") and (
            self.path == "" or self.path.endswith("/") or not self.path.endswith(MODEL_SUFFIXES)
        )


def parse_model_uri(uri: str) -> ModelURI:
    """Parse and check a model URI; refuse any scheme we do not serve from.

    Raises:
        UnsupportedURIError: the scheme or the shape of the URI is not one we take.
    """
    text = uri.strip()
    if not text:
        raise UnsupportedURIError(f"model URI is empty; expected {EXPECTED_URIS}")
    parsed = urlparse(text)
    if parsed.scheme in ("gs", "s3"):
        return _bucket_uri(uri, text)
    if parsed.scheme == "models":
        return _registry_uri(uri, text)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise UnsupportedURIError(f"{uri!r}: file:// URIs must be absolute (file:///path)")
        return ModelURI(raw=text, scheme="file", path=unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return ModelURI(raw=text, scheme="file", path=str(Path(text).expanduser().absolute()))
    raise UnsupportedURIError(
        f"unsupported model URI scheme {parsed.scheme + ':'!r} in {uri!r}; expected {EXPECTED_URIS}"
    )


EXPECTED_URIS = (
    "gs://bucket/path, s3://bucket/path, models:/NAME/VERSION, models:/NAME@ALIAS, "
    "file:///path or a local path"
)


def parse_destination(text: str) -> ModelURI:
    """Where ``publish`` writes: as ``parse_model_uri``, plus ``models:/NAME`` (a new version).

    Raises:
        UnsupportedURIError: the destination is not one publish can write to.
    """
    rest = text.strip()[len("models:") :].lstrip("/") if text.startswith("models:") else ""
    if rest and "/" not in rest and "@" not in rest:
        return ModelURI(raw=text.strip(), scheme="models", path=rest)
    target = parse_model_uri(text)
    if target.scheme == "models":
        raise UnsupportedURIError(
            f"{text!r}: the registry numbers versions itself; publish to models:/NAME"
        )
    return target


def _bucket_uri(uri: str, text: str) -> ModelURI:
    parsed = urlparse(text)
    scheme = parsed.scheme
    if not parsed.netloc:
        raise UnsupportedURIError(f"{uri!r} names no bucket; expected {scheme}://bucket/path")
    generation = None
    if parsed.fragment:
        if scheme != "gs" or not parsed.fragment.isdigit():
            raise UnsupportedURIError(
                f"{uri!r}: '#' pins a GCS generation and expects a number; "
                "pin an s3:// model by its digest (PREDICTOR_MODEL_SHA256)"
            )
        generation = int(parsed.fragment)
    return ModelURI(
        raw=text,
        scheme=scheme,
        bucket=parsed.netloc,
        path=parsed.path.lstrip("/"),
        generation=generation,
    )


def _registry_uri(uri: str, text: str) -> ModelURI:
    """``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` (MLflow's model registry)."""
    rest = text[len("models:") :].lstrip("/")
    shape = "expected models:/NAME/VERSION (a number) or models:/NAME@ALIAS"
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        if not name or not alias or "/" in alias:
            raise UnsupportedURIError(f"{uri!r}: {shape}")
        return ModelURI(raw=text, scheme="models", path=name, alias=alias)
    name, _, version = rest.rpartition("/")
    if not name or not version.isdigit():
        raise UnsupportedURIError(f"{uri!r}: {shape}")
    return ModelURI(raw=text, scheme="models", path=name, version=version)


def as_prefix(path: str) -> str:
    """A bucket path as a prefix: empty, or ending in exactly one ``/``."""
    path = path.strip("/")
    return path + "/" if path else ""


def object_uri(scheme: str, bucket: str, name: str) -> ModelURI:
    """The URI of one object ``name`` in ``bucket`` of a bucket store."""
    return ModelURI(raw=f"{scheme}://{bucket}/{name}", scheme=scheme, bucket=bucket, path=name)
