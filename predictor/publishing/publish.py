"""Publishing a model bundle: build it, accept it, then write it where it can never be overwritten.

``publish`` assembles ``model.json``, the artifact and the acceptance sets in a staging folder,
loads the staged bundle exactly as the server would (schema, digests, versions, acceptance), and
only then copies it to ``DEST/<name>/<version>/``: a new local folder, or create-only objects in a
bucket (``gs://``, ``s3://``), so a second publish of the same version fails and the first stays
byte-identical, ``model.json`` last; or a new version in MLflow's registry (``models:/NAME``),
see ``destinations``.
"""

from __future__ import annotations

import getpass
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from predictor.bundle.manifest import MANIFEST, parse_manifest, runtime_versions
from predictor.errors import PublishError, VersionExistsError
from predictor.loading.gate import answer, load_accepted
from predictor.loading.loader import load_model
from predictor.publishing.destinations import publish_to_bucket, publish_to_registry
from predictor.publishing.sample import described_by_sample, write_reference
from predictor.publishing.staging import (
    artifact_entry,
    in_format,
    read_json,
    stage_code,
    stage_native,
    write_set,
)
from predictor.settings import Settings
from predictor.stores.uris import parse_destination

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundleSpec:
    """Everything ``publish`` needs to know about the model and its lineage."""

    model_file: Path
    name: str
    version: str
    created_by: str = field(default_factory=getpass.getuser)
    e2e_file: Path | None = None
    atol: float = 1e-6
    confidence_file: Path | None = None
    metric: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    training_data_uri: str | None = None
    training_data_version: str | None = None
    feature_extractor_version: str | None = None
    string_features: tuple[str, ...] = ()
    sample_file: Path | None = None
    """A CSV or Parquet sample of the input: its columns' names and types go in model.json."""
    code_files: tuple[Path, ...] = ()
    """Python modules the pickle needs (custom transformers, functions), shipped in ``code/``."""
    metrics: dict[str, float] = field(default_factory=dict)
    format: str | None = None
    """``skops`` (a file that cannot run code) or ``pickle``; None keeps the model file's own."""


def stage_bundle(spec: BundleSpec, staging: Path) -> Path:
    """Write the bundle into ``staging`` and accept it as the server would; returns the folder.

    Raises:
        ArtifactError: the staged bundle fails a check the server would make.
        PublishError: the inputs are unusable.
    """
    if not spec.model_file.is_file():
        raise PublishError(f"no such model file: {spec.model_file}")
    if spec.confidence_file is not None and spec.metric is None:
        raise PublishError("--confidence needs --metric (and usually --min and/or --max)")
    folder = staging / "bundle"
    (folder / "acceptance").mkdir(parents=True)
    code = stage_code(spec.code_files, folder)
    artifact = folder / spec.model_file.name
    shutil.copyfile(spec.model_file, artifact)
    bare = load_model(_staging_settings(artifact))
    estimator, signature = bare.estimator, bare.signature
    artifact, trusted = in_format(spec.format, artifact, estimator)
    acceptance: dict[str, Any] = {}
    if spec.e2e_file is not None:
        data = read_json(spec.e2e_file)
        if "expected" not in data:
            outputs = list(signature.outputs)
            answered = answer(
                bare, {"instances": data["instances"], "parameters": {"outputs": outputs}}
            )
            data = {"instances": data["instances"], "expected": {o: answered[o] for o in outputs}}
        acceptance["e2e"] = write_set(folder, "e2e.json", data) | {"atol": spec.atol}
    if spec.confidence_file is not None:
        confidence = write_set(folder, "confidence.json", read_json(spec.confidence_file))
        bounds = {"min": spec.minimum, "max": spec.maximum}
        acceptance["confidence"] = (
            confidence
            | {"metric": spec.metric}
            | {k: v for k, v in bounds.items() if v is not None}
        )
    native = stage_native(bare, folder)
    names = signature.feature_names or tuple(f"f{i}" for i in range(signature.n_features or 0))
    features = [
        {"name": n, "dtype": d} for n, d in zip(names, signature.feature_dtypes, strict=True)
    ]
    reference = None
    if spec.sample_file is not None:
        features, reference = described_by_sample(spec.sample_file, bare)
    document = {
        "schema_version": 1,
        "name": spec.name,
        "version": spec.version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "created_by": spec.created_by,
        "task": signature.task,
        "features": [
            {"name": f["name"], "dtype": "BYTES"} if f["name"] in spec.string_features else f
            for f in features
        ],
        "classes": list(signature.classes) if signature.classes is not None else None,
        "hyperparameters": _json_safe_params(estimator),
        "training_data": {
            k: v
            for k, v in {
                "uri": spec.training_data_uri,
                "version": spec.training_data_version,
            }.items()
            if v is not None
        },
        "feature_extractor_version": spec.feature_extractor_version,
        "artifact": artifact_entry(artifact, trusted),
        "runtime": runtime_versions(),
        "metrics": spec.metrics,
        "acceptance": acceptance,
        "code": code,
    }
    if native is not None:
        document["native"] = native
    if reference is not None:
        document["reference"] = write_reference(reference, folder)
    parse_manifest(document)
    (folder / MANIFEST).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    accepted = load_accepted(_staging_settings(folder))
    logger.info("staged bundle accepted:\n%s", accepted.acceptance.describe())
    logger.info("its digest, to pin as PREDICTOR_MODEL_SHA256: %s", accepted.artifact.sha256)
    return folder


def publish(spec: BundleSpec, destination: str, *, deadline_s: float = 120.0) -> str:
    """Stage, accept and publish the bundle; returns the exact URI to deploy.

    Raises:
        VersionExistsError: the version is already published (nothing was changed).
        ArtifactError: the bundle failed a check (nothing was published).
    """
    target = parse_destination(destination)
    with tempfile.TemporaryDirectory(prefix="publish-") as staging:
        folder = stage_bundle(spec, Path(staging))
        files = sorted(
            (p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.name == MANIFEST
        )
        relative = f"{spec.name}/{spec.version}/"
        if target.scheme == "models":
            manifest = parse_manifest(json.loads((folder / MANIFEST).read_text()))
            return publish_to_registry(target, folder, manifest.lineage(), deadline_s=deadline_s)
        if target.scheme in ("gs", "s3"):
            return publish_to_bucket(target, relative, folder, files, deadline_s=deadline_s)
        out = Path(target.path) / spec.name / spec.version
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            out.mkdir()
        except FileExistsError as e:
            raise VersionExistsError(
                f"{out} already exists: {spec.name} {spec.version} is published; "
                "versions are immutable, publish a new version"
            ) from e
        for path in files:
            dest = out / path.relative_to(folder)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        return str(out) + "/"


def _staging_settings(path: Path) -> Settings:
    # The staged bundle is checked on its own merits, whatever PREDICTOR_* the shell has set.
    return Settings(
        model_uri=str(path), model_sha256=None, require_digest=False, allow_version_skew=False
    )


def _json_safe_params(estimator: Any) -> dict[str, Any]:
    params = estimator.get_params(deep=True) if hasattr(estimator, "get_params") else {}
    safe: dict[str, Any] = {}
    for key, value in sorted(params.items()):
        if value is None or isinstance(value, bool | int | float | str):
            safe[key] = value
        elif not hasattr(value, "get_params"):  # nested estimators are described by their params
            safe[key] = repr(value)[:200]
    return safe
