"""Who changed the rollout, when, from which model version to which, and why: annotations.

Every change the tooling makes carries these annotations on the InferenceService (and the same
facts in a Kubernetes Event), so ``kubectl describe`` tells the story without our logs.
"""

from __future__ import annotations

from datetime import UTC, datetime

PREFIX = "rollout.kserve-sklearn-predictor.io/"
ACTION = PREFIX + "last-action"
ACTOR = PREFIX + "last-actor"
TIME = PREFIX + "last-time"
FROM_VERSION = PREFIX + "from-version"
TO_VERSION = PREFIX + "to-version"
REASON = PREFIX + "reason"
STABLE_URI = PREFIX + "stable-model-uri"
STABLE_SHA256 = PREFIX + "stable-model-sha256"
PHASE = PREFIX + "phase"
"""``awaiting-approval`` while ``auto --pause-before-promote`` waits for ``resume``; any other
change removes it."""
AWAITING_APPROVAL = "awaiting-approval"
MODEL_ALIAS = PREFIX + "model-alias"
"""The registry alias (``models:/NAME@ALIAS``) a canary's concrete version was resolved from."""


def audit_annotations(
    *,
    action: str,
    actor: str,
    reason: str,
    from_version: str | None,
    to_version: str | None,
    now: datetime | None = None,
) -> dict[str, str]:
    """The annotations recording one change."""
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {
        ACTION: action,
        ACTOR: actor,
        TIME: stamp,
        FROM_VERSION: from_version or "unknown",
        TO_VERSION: to_version or "unknown",
        REASON: reason[:1000],
    }


def version_from_uri(uri: str | None) -> str | None:
    """The version in a published bundle URI (``.../<name>/<version>/[#generation]``), if any."""
    if not uri:
        return None
    path = uri.split("#", 1)[0].rstrip("/")
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[-1][:1].isdigit():
        return parts[-1]
    return None
