"""The model card: what a model is, where it came from, what it takes and gives; pure functions.

Built from what the server loaded: the versions that answer (a bandit's arms, the shadow), the
digest, source, engine, task and library versions; a bundle's lineage, training data, acceptance
results and publish time; one row per input feature with its type, its categories where they are
known (a categorical the model was fitted with, or the categories of the bundle's drift
reference) and its reference range; the outputs and classes; and an example row for the form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from predictor.bundle.manifest import runtime_versions
from predictor.drift.reference import NUMBER, STRING
from predictor.inference.signature import Signature

if TYPE_CHECKING:
    from predictor.loading.loader import LoadedModel

MAX_CHOICES = 200
"""Categories listed in the form's select at most (beyond that, a free text field)."""


def model_card(
    name: str, loaded: LoadedModel, versions: list[LoadedModel], shadow: str | None
) -> dict[str, Any]:
    """The card of ``loaded`` (the version that speaks for ``name``)."""
    signature = loaded.signature
    manifest = loaded.manifest
    card: dict[str, Any] = {
        "name": name,
        "version": loaded.version,
        "versions": [{"version": m.version, "sha256": m.artifact.sha256} for m in versions],
        "shadow_version": shadow,
        "sha256": loaded.artifact.sha256,
        "source": loaded.artifact.source.raw,
        "engine": loaded.engine_reason,
        "task": signature.task,
        "libraries": runtime_versions(),
        "lineage": loaded.lineage(),
        "acceptance": loaded.acceptance.as_dict(),
        "text": signature.text,
        "named": signature.feature_names is not None,
        "inputs": inputs(signature, loaded),
        "outputs": list(signature.outputs),
        "classes": [_plain(c) for c in signature.classes]
        if signature.classes is not None
        else None,
    }
    if manifest is not None:
        card["published"] = {
            "at": manifest.document["created_at"],
            "by": manifest.document["created_by"],
            "training_data": dict(manifest.document.get("training_data") or {}),
        }
    card["example"] = example_row(card["inputs"], loaded)
    return card


def inputs(signature: Signature, loaded: LoadedModel) -> list[dict[str, Any]]:
    """One row per feature: name, type, categories where known, the reference's range."""
    if signature.text:
        return [{"name": "text", "type": "text"}]
    names = signature.feature_names or tuple(f"f{i}" for i in range(signature.n_features or 0))
    categorical = {index: cats for index, cats in signature.categoricals}
    reference = {f.name: f for f in loaded.reference.features} if loaded.reference else {}
    rows = []
    for index, (feature, dtype) in enumerate(zip(names, signature.feature_dtypes, strict=True)):
        row: dict[str, Any] = {"name": feature, "type": "string" if dtype == "BYTES" else "number"}
        found = reference.get(feature)
        if index in categorical:
            row["categories"] = [_plain(c) for c in categorical[index]][:MAX_CHOICES]
        elif found is not None and found.kind == STRING and found.known:
            row["categories"] = list(found.known)[:MAX_CHOICES]
        if found is not None and found.kind == NUMBER and found.minimum is not None:
            row["range"] = [found.minimum, found.maximum]
        rows.append(row)
    return rows


def example_row(rows: list[dict[str, Any]], loaded: LoadedModel) -> list[Any]:
    """A row to prefill the form.

    The bundle's first acceptance row, else one built from the reference (the middle of each
    range, the first category), else zeros.
    """
    e2e = loaded.acceptance_sets.e2e
    if e2e and e2e.get("instances"):
        first = e2e["instances"][0]
        if isinstance(first, dict):
            return [first.get(r["name"]) for r in rows]
        if isinstance(first, list) and len(first) == len(rows):
            return list(first)
        if isinstance(first, str) and loaded.signature.text:
            return [first]
    made: list[Any] = []
    for row in rows:
        if row["type"] == "text":
            made.append("")
        elif "categories" in row and row["categories"]:
            made.append(row["categories"][0])
        elif "range" in row:
            low, high = row["range"]
            made.append(round((low + high) / 2, 4))
        else:
            made.append("" if row["type"] == "string" else 0.0)
    return made


def _plain(value: Any) -> Any:
    """A class or category as JSON has it (numpy scalars to Python ones)."""
    return value.item() if isinstance(value, np.generic) else value
