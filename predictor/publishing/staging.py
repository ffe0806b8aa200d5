"""The files of a bundle as ``publish`` stages them, each with its digest for ``model.json``.

The model in the format asked for (a pickle, or ``model.skops`` with the types it holds), the
native model, the bundle's own Python modules and the acceptance sets.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from predictor.errors import PublishError
from predictor.inference.native import NATIVE_FILE, converter_version
from predictor.loading import skops_files
from predictor.loading.loader import LoadedModel
from predictor.stores.files import sha256_file

logger = logging.getLogger(__name__)


def artifact_entry(artifact: Path, trusted: tuple[str, ...] | None) -> dict[str, Any]:
    """The manifest's ``artifact``: path and sha256, and the trusted types of a skops file."""
    entry: dict[str, Any] = {"path": artifact.name, "sha256": sha256_file(artifact)}
    if trusted is not None:
        entry["trusted_types"] = list(trusted)
    return entry


def in_format(
    wanted: str | None, artifact: Path, estimator: Any
) -> tuple[Path, tuple[str, ...] | None]:
    """The bundle's model file in the format asked for, and the types it trusts (skops only).

    A pickle becomes ``model.skops`` for ``--format skops``; a skops file cannot become a pickle.
    """
    is_skops = artifact.suffix == skops_files.SKOPS_SUFFIX
    if wanted not in (None, "skops", "pickle"):
        raise PublishError("--format: expected skops or pickle, got another value")
    if wanted == "pickle" and is_skops:
        raise PublishError("--format pickle: the model is a .skops file, which stays one")
    if is_skops:
        return artifact, skops_files.types_in(artifact)
    if wanted != "skops":
        return artifact, None
    converted = artifact.with_name("model" + skops_files.SKOPS_SUFFIX)
    held = skops_files.dump(estimator, converted)
    artifact.unlink()
    logger.info("model.skops holds %d types: %s", len(held), ", ".join(held))
    return converted, held


def stage_native(bare: LoadedModel, folder: Path) -> dict[str, str] | None:
    """Convert the model for the native engine into the bundle when it converts and verifies.

    The server then serves natively from the first request, without converting at start-up.
    """
    if bare.native_upgrade is None:
        return None
    engine, reason = bare.native_upgrade.attempt(origin="converted at publish")
    if engine is None:
        logger.warning("bundle without a native model: %s", reason)
        return None
    path = folder / NATIVE_FILE
    path.write_bytes(engine.model)
    logger.info("native model: %s", reason)
    return {"path": NATIVE_FILE, "sha256": sha256_file(path), "converter": converter_version()}


def stage_code(files: tuple[Path, ...], folder: Path) -> list[dict[str, str]]:
    """Copy the modules into ``code/`` and make them importable for the checks that follow."""
    if not files:
        return []
    (folder / "code").mkdir()
    entries = []
    for source in files:
        if source.suffix != ".py" or not source.stem.isidentifier() or not source.is_file():
            raise PublishError(f"--code {source}: expected an existing module file, name.py")
        target = folder / "code" / source.name
        shutil.copyfile(source, target)
        entries.append({"path": f"code/{source.name}", "sha256": sha256_file(target)})
    sys.path.insert(0, str(folder / "code"))
    return entries


def write_set(folder: Path, filename: str, data: dict[str, Any]) -> dict[str, str]:
    """Write an acceptance set into ``acceptance/``; its manifest entry (path, sha256)."""
    path = folder / "acceptance" / filename
    path.write_text(json.dumps(data, sort_keys=True) + "\n")
    return {"path": f"acceptance/{filename}", "sha256": sha256_file(path)}


def read_json(path: Path) -> dict[str, Any]:
    """A set given to ``publish``: a JSON object with an ``instances`` list."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PublishError(f"cannot read {path}: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("instances"), list):
        raise PublishError(f"{path} must be a JSON object with an 'instances' list")
    return data
