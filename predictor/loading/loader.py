"""Load a model the safe way: fetch, verify every digest, check versions, then unpickle.

Unpickling runs code (a skops file builds only the types it is trusted with;
``--allow_pickle false`` refuses anything else), so the sha256 recorded in a bundle's manifest
and the one pinned by the deployer are both checked on the bytes on disk before the file is
read. A bundle saved with another scikit-learn minor (or numpy major) version, or
scikit-learn's ``InconsistentVersionWarning`` while loading, refuses the model unless skew is
allowed. The acceptance sets are read and checked here too; running them is the gate's
(``loading.gate``).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from predictor.bundle.manifest import (
    MANIFEST,
    Manifest,
    Reference,
    bundle_file,
    check_compatibility,
    check_manifest_matches,
    read_manifest,
    read_reference,
    runtime_versions,
)
from predictor.inference.engine_choice import NativeUpgrade, select_engine
from predictor.inference.engines import EngineSlot
from predictor.inference.introspect import signature_of
from predictor.inference.signature import Signature
from predictor.loading.acceptance import (
    AcceptanceReport,
    AcceptanceSets,
    bundle_checks,
    read_acceptance_sets,
)
from predictor.loading.mlmodel import MLMODEL, MLflowModel, read_mlmodel
from predictor.loading.unpickle import refuse_code, unpickle
from predictor.settings import Settings
from predictor.stores.fetch import (
    FetchedModel,
    fetch,
    find_model_file,
    model_at,
    model_folder,
    verify_digest,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A fetched, verified and unpickled estimator with everything known about it."""

    estimator: Any
    signature: Signature
    artifact: FetchedModel
    version: str
    load_seconds: float
    engine: EngineSlot
    """The engine that answers (a native one may take over; see ``native_upgrade``)."""
    manifest: Manifest | None = None
    acceptance_sets: AcceptanceSets = AcceptanceSets()
    acceptance: AcceptanceReport = AcceptanceReport()
    mlflow_model: MLflowModel | None = None
    """The MLflow model folder's description, when the model was logged with MLflow."""
    native_upgrade: NativeUpgrade | None = None
    """The native engine's conversion, to run once the model serves (None: nothing to do)."""
    reference: Reference | None = None
    """What the training data looked like, for live drift (a bundle published with a sample)."""

    @property
    def engine_reason(self) -> str:
        """Which engine answers, and why."""
        return self.engine.reason

    def lineage(self) -> dict[str, str]:
        """Where the model came from, as scalars: registry, MLflow run, bundle fields."""
        found = dict(self.artifact.registry)
        if self.mlflow_model is not None:
            found.update(self.mlflow_model.lineage())
        if self.manifest is not None:
            found.update({f"bundle_{k}": v for k, v in self.manifest.lineage().items()})
        return found


def load_model(settings: Settings) -> LoadedModel:
    """Fetch, verify and unpickle the model (or bundle) at ``settings.model_location``.

    Raises:
        ArtifactError: any reason the model must not serve; the subclass and message say which.
    """
    started = time.monotonic()
    fetched = fetch(
        settings.model_location,
        download_dir=settings.download_dir,
        deadline_s=settings.store_deadline_seconds,
    )
    if fetched.target.is_dir():
        fetched = replace(fetched, target=model_folder(fetched.target, (MANIFEST, MLMODEL)))
    manifest = read_manifest(fetched.target) if fetched.target.is_dir() else None
    mlflow_model = None
    if manifest is None and fetched.target.is_dir():
        mlflow_model = read_mlmodel(fetched.target)
    sets = AcceptanceSets()
    reference = None
    if mlflow_model is not None:
        artifact = model_at(fetched, mlflow_model.model_file)
        logger.info("MLflow model (%s format)", mlflow_model.serialization_format)
    elif manifest is None:
        artifact = model_at(fetched, find_model_file(fetched.target))
    else:
        path = bundle_file(
            fetched.target, manifest.artifact_path, manifest.artifact_sha256, "artifact"
        )
        artifact = model_at(fetched, path, manifest.pinned_digest)
        logger.info(
            "bundle %s %s: artifact sha256 matches model.json", manifest.name, manifest.version
        )
    verify_digest(artifact, settings.model_sha256, required=settings.require_digest)
    if not settings.allow_pickle:
        refuse_code(artifact, mlflow_model, ships_code=manifest is not None and bool(manifest.code))
    if manifest is not None:
        for skew in check_compatibility(
            manifest.document["runtime"], runtime_versions(), allow_skew=settings.allow_version_skew
        ):
            logger.warning("version skew: %s", skew)
        sets = read_acceptance_sets(fetched.target, manifest)
        reference = read_reference(fetched.target, manifest)
        install_code(fetched.target, manifest)
    estimator = unpickle(
        artifact,
        allow_version_skew=settings.allow_version_skew,
        mlflow_model=mlflow_model,
        trusted_types=manifest.trusted_types if manifest is not None else None,
    )
    signature = signature_of(
        estimator, feature_dtypes=manifest.feature_dtypes if manifest is not None else None
    )
    if manifest is not None:
        check_manifest_matches(manifest, signature)
    version = version_of(artifact) if manifest is None else manifest.version
    version = artifact.registry.get("registry_version", version)
    native_model = None
    if manifest is not None and manifest.native is not None and settings.native_engine:
        native = manifest.native
        native_model = bundle_file(
            fetched.target, native["path"], native["sha256"], "native model"
        ).read_bytes()
    engine, upgrade = select_engine(
        estimator,
        signature,
        settings.engines,
        bundle_checks(sets, signature),
        native_model=native_model,
    )
    elapsed = time.monotonic() - started
    logger.info(
        "model loaded: %s version=%s sha256=%s task=%s features=%s in %.2fs",
        artifact.model_file.name,
        version,
        artifact.sha256,
        signature.task,
        signature.n_features,
        elapsed,
    )
    logger.info("engine: %s", engine.reason)
    return LoadedModel(
        estimator=estimator,
        signature=signature,
        artifact=artifact,
        version=version,
        load_seconds=elapsed,
        engine=engine,
        manifest=manifest,
        acceptance_sets=sets,
        mlflow_model=mlflow_model,
        native_upgrade=upgrade,
        reference=reference,
    )


def install_code(root: Path, manifest: Manifest) -> None:
    """Make the bundle's own modules importable, each checked against its digest first.

    They are trusted exactly as much as the pickle, which names them: a module whose digest
    differs from the manifest's is refused before anything is imported.

    Raises:
        DigestMismatchError: a module's sha256 is not the one the manifest records.
        ManifestError: a module the manifest names is missing.
    """
    if not manifest.code:
        return
    for entry in manifest.code:
        bundle_file(root, entry["path"], entry["sha256"], "code")
    folder = str((root / "code").resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    logger.info("bundle code: %s", ", ".join(e["path"] for e in manifest.code))


def version_of(artifact: FetchedModel) -> str:
    """The version reported for a bare model file: sha256 prefix, plus GCS generation."""
    version = artifact.sha256[:12]
    if artifact.generation is not None:
        version += f"-g{artifact.generation}"
    return version
