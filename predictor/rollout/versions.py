"""Which model version each side of a canary serves, learned from what the pods report.

Every predictor exports ``predictor_model_info{model, version, sha256}``. A side whose digest is
pinned (``PREDICTOR_MODEL_SHA256``) serves the version reported with that digest; a side whose
URI names a version that is being served serves that one; when only one side is known and
exactly two versions are served, the other side serves the other. The version parsed from a
URI is the last resort, and a bare model file pinned by digest has the digest's first 12
characters as its version (as the predictor reports it).
"""

from __future__ import annotations

from predictor.rollout.analysis import MetricSource
from predictor.rollout.audit import version_from_uri
from predictor.rollout.model_ref import ModelRef

MODEL_FILE_SUFFIXES = (".joblib", ".pkl", ".pickle", ".skops")


def served_versions(source: MetricSource, model: str) -> dict[str, str]:
    """``{sha256: version}`` of every model version the pods of ``model`` report serving."""
    rows = source.query(f'max by (version, sha256) (predictor_model_info{{model="{model}"}})')
    return {
        labels["sha256"]: labels["version"]
        for labels, value in rows
        if value > 0 and "sha256" in labels and "version" in labels
    }


def resolve(
    stable: ModelRef | None, canary: ModelRef | None, served: dict[str, str]
) -> tuple[str | None, str | None]:
    """The (stable, canary) versions; None for a side that cannot be told."""
    versions = set(served.values())
    found = [_known(ref, served, versions) for ref in (stable, canary)]
    if len(versions) == 2:
        for side, other in ((0, 1), (1, 0)):
            if found[side] is None and found[other] in versions:
                found[side] = (versions - {found[other]}).pop()
    return (
        found[0] or _from_uri(stable),
        found[1] or _from_uri(canary),
    )


def _known(ref: ModelRef | None, served: dict[str, str], versions: set[str]) -> str | None:
    if ref is None:
        return None
    if ref.sha256 and ref.sha256 in served:
        return served[ref.sha256]
    parsed = version_from_uri(ref.uri)
    return parsed if parsed in versions else None


def _from_uri(ref: ModelRef | None) -> str | None:
    if ref is None:
        return None
    path = ref.uri.split("#", 1)[0]
    if ref.sha256 and path.endswith(MODEL_FILE_SUFFIXES):
        return ref.sha256[:12]
    return version_from_uri(ref.uri)
