"""Model bundles: a folder (or gs:// prefix) with the artifact, ``model.json`` and acceptance sets.

This module owns the manifest: its validation on read (against ``bundle.schema``), the
digests of every file it names, and the library-version compatibility rules. It never unpickles;
``loader`` calls these checks before the model file is read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy
import sklearn
from pydantic import ValidationError

from predictor.bundle.schema import ManifestModel
from predictor.drift.reference import Reference as Reference  # the type read_reference gives
from predictor.errors import DigestMismatchError, IncompatibleModelError, ManifestError
from predictor.inference.signature import Signature
from predictor.stores.files import sha256_file
from predictor.validation import describe_errors

logger = logging.getLogger(__name__)

MANIFEST = "model.json"


@dataclass(frozen=True)
class Manifest:
    """A validated ``model.json``."""

    document: dict[str, Any]

    @property
    def name(self) -> str:
        """The model's name."""
        return str(self.document["name"])

    @property
    def version(self) -> str:
        """The model's version, reported as ``model_version``."""
        return str(self.document["version"])

    @property
    def artifact_path(self) -> str:
        """Path of the model file inside the bundle."""
        return str(self.document["artifact"]["path"])

    @property
    def native(self) -> dict[str, str] | None:
        """The native (ONNX) model's ``path``, ``sha256`` and ``converter``, when converted."""
        native = self.document.get("native")
        return dict(native) if native else None

    @property
    def reference(self) -> dict[str, str] | None:
        """The drift reference's ``path`` and ``sha256``, when the bundle has one."""
        reference = self.document.get("reference")
        return dict(reference) if reference else None

    @property
    def trusted_types(self) -> tuple[str, ...] | None:
        """The types a ``.skops`` artifact holds, the only ones it is built with (None: pickle)."""
        trusted = self.document["artifact"].get("trusted_types")
        return None if trusted is None else tuple(trusted)

    @property
    def artifact_sha256(self) -> str:
        """sha256 the model file must have."""
        return str(self.document["artifact"]["sha256"])

    @property
    def pinned_digest(self) -> str:
        """The digest a deployer pins: the file's sha256, with its trusted types for skops."""
        trusted = self.trusted_types
        return (
            self.artifact_sha256 if trusted is None else trust_digest(self.artifact_sha256, trusted)
        )

    @property
    def feature_dtypes(self) -> dict[str, str]:
        """Declared datatype of each feature, by name."""
        return {f["name"]: f["dtype"] for f in self.document["features"]}

    @property
    def feature_means(self) -> tuple[float, ...] | None:
        """Each feature's mean over the publish sample; None unless every feature has one."""
        means = [f.get("mean") for f in self.document["features"]]
        if any(m is None for m in means):
            return None
        return tuple(float(m) for m in means)

    @property
    def code(self) -> list[dict[str, str]]:
        """The Python modules the pickle needs (``code/<module>.py``, with digests)."""
        return list(self.document.get("code") or [])

    @property
    def acceptance(self) -> dict[str, Any]:
        """The acceptance section (``e2e`` and/or ``confidence``), possibly empty."""
        return dict(self.document.get("acceptance") or {})

    def lineage(self) -> dict[str, str]:
        """Scalar lineage fields for v2 metadata parameters and the home page."""
        doc = self.document
        training = doc.get("training_data") or {}
        fields = {
            "name": doc["name"],
            "version": doc["version"],
            "created_at": doc["created_at"],
            "created_by": doc["created_by"],
            "training_data_uri": training.get("uri"),
            "training_data_version": training.get("version"),
            "feature_extractor_version": doc.get("feature_extractor_version"),
            "saved_with_sklearn": doc["runtime"]["scikit-learn"],
        }
        fields.update({f"metric_{k}": v for k, v in (doc.get("metrics") or {}).items()})
        return {k: str(v) for k, v in fields.items() if v is not None}


def trust_digest(file_sha256: str, trusted: Iterable[str]) -> str:
    """The digest of a skops artifact and its trusted types: what a deployer pins.

    sha256 of the file's sha256 and the sorted type names, one per line: two bundles with the
    same file but different trust lists have different digests.
    """
    text = "\n".join([file_sha256, *sorted(trusted)]) + "\n"
    return hashlib.sha256(text.encode()).hexdigest()


def parse_manifest(document: Any) -> Manifest:
    """Validate a decoded ``model.json`` against its model (``bundle.schema``).

    Raises:
        ManifestError: naming every offending key and what it expected.
    """
    if not isinstance(document, dict):
        raise ManifestError(f"{MANIFEST} must hold a JSON object")
    try:
        ManifestModel.model_validate(document)
    except ValidationError as e:
        raise ManifestError(f"{MANIFEST} is invalid: {describe_errors(e)}") from e
    return Manifest(document)


def read_manifest(root: Path) -> Manifest | None:
    """Read and validate ``root/model.json``; None when the folder is not a bundle."""
    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"{MANIFEST} is not valid JSON: {e}") from e
    return parse_manifest(document)


def bundle_file(root: Path, relative: str, sha256: str, what: str) -> Path:
    """A file the manifest names, checked to exist inside the bundle and to match its digest.

    Raises:
        ManifestError: the path leaves the bundle or the file is missing.
        DigestMismatchError: the file's sha256 is not the manifest's, naming both.
    """
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ManifestError(f"{MANIFEST}: {what} path {relative!r} leaves the bundle")
    if not path.is_file():
        raise ManifestError(
            f"{MANIFEST} names {what} {relative!r}, but the bundle has no such file"
        )
    actual = sha256_file(path)
    if actual != sha256:
        raise DigestMismatchError(
            f"{what} {relative}: sha256 is {actual}, but {MANIFEST} records {sha256}"
        )
    return path


def runtime_versions() -> dict[str, str]:
    """The library versions of this process, in the manifest's ``runtime`` shape."""
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "joblib": joblib.__version__,
        "numpy": numpy.__version__,
    }


def check_compatibility(
    saved: dict[str, str], running: dict[str, str], *, allow_skew: bool
) -> list[str]:
    """Compare the versions a model was saved with to ours.

    A different scikit-learn minor or numpy major version can change results or fail to load,
    so it refuses the model unless skew is allowed. Python and joblib differences are returned
    as warnings.

    Raises:
        IncompatibleModelError: naming the library and both versions.
    """
    refusals: list[str] = []
    warnings: list[str] = []
    for library, depth in (("scikit-learn", 2), ("numpy", 1), ("joblib", 1), ("python", 2)):
        before, now = saved.get(library), running[library]
        if before is None or _release(before, depth) == _release(now, depth):
            continue
        text = f"{library} {before} (saved) vs {now} (here)"
        (refusals if library in ("scikit-learn", "numpy") else warnings).append(text)
    if refusals and not allow_skew:
        raise IncompatibleModelError(
            f"saved with other library versions: {'; '.join(refusals)}; results may differ. "
            "Re-save the model with this runtime, or set PREDICTOR_ALLOW_VERSION_SKEW=true"
        )
    return refusals + warnings


def check_manifest_matches(manifest: Manifest, signature: Signature) -> None:
    """The manifest's task, features and classes must describe the estimator it ships.

    Raises:
        ManifestError: naming what differs.
    """
    doc = manifest.document
    if doc["task"] != signature.task:
        raise ManifestError(
            f"{MANIFEST} says task {doc['task']!r}, the model is {signature.task!r}"
        )
    names = tuple(f["name"] for f in doc["features"])
    if signature.feature_names is not None and names != signature.feature_names:
        raise ManifestError(
            f"{MANIFEST} lists features {list(names)}, "
            f"the model was fitted on {list(signature.feature_names)}"
        )
    if signature.n_features is not None and len(names) != signature.n_features:
        raise ManifestError(
            f"{MANIFEST} lists {len(names)} features, the model takes {signature.n_features}"
        )
    classes = doc.get("classes")
    if classes is not None and signature.classes is not None:
        if [str(c) for c in classes] != [str(c) for c in signature.classes]:
            raise ManifestError(
                f"{MANIFEST} lists classes {classes}, the model has {list(signature.classes)}"
            )


def _release(version: str, depth: int) -> tuple[str, ...]:
    return tuple(version.split("+")[0].split(".")[:depth])


def read_reference(root: Path, manifest: Manifest) -> Reference | None:
    """The bundle's drift reference, checked against its digest; None when it has none.

    Raises:
        DigestMismatchError: the file's sha256 is not the one the manifest records.
        ManifestError: it is missing or malformed.
    """
    entry = manifest.reference
    if entry is None:
        return None
    path = bundle_file(root, entry["path"], entry["sha256"], "drift reference")
    try:
        return Reference.from_document(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as e:
        raise ManifestError(f"{entry['path']} is not a drift reference: {e}") from e
