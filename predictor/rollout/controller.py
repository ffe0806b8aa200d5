"""Running a canary by hand: start, step, watch, promote, roll back (``auto`` drives these).

Every change is decided on a fresh read and sent with that read's ``resourceVersion``; a 409
re-reads and re-decides instead of overwriting. Promote on a promoted service and rollback on a
rolled-back one change nothing and say so. Steps are judged from status (``status.split_reached``)
with a timeout; the clock and ``sleep`` are injected so tests need no real waiting.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from predictor.rollout import patches
from predictor.rollout.audit import MODEL_ALIAS, PHASE, audit_annotations, version_from_uri
from predictor.rollout.errors import (
    CanaryImpossibleError,
    ConflictError,
    RolloutError,
    StepTimeoutError,
)
from predictor.rollout.status import (
    STANDARD,
    canary_failure,
    canary_percent_requested,
    deployment_mode,
    describe,
    is_ready,
    model_uris,
    service_address,
    split_reached,
    split_text,
)

logger = logging.getLogger(__name__)

Patch = dict[str, Any]
CONFLICT_RETRIES = 5


class InferenceServicesPort(Protocol):
    """What the controller needs from the Kubernetes adapter."""

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        """Read the InferenceService."""
        ...

    def patch(
        self, namespace: str, name: str, body: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        """Merge-patch the InferenceService."""
        ...

    def supports_standard_canary(self) -> bool:
        """Whether KServe's CRD has ``spec.canary``."""
        ...

    def record_event(
        self, isvc: dict[str, Any], *, reason: str, message: str, warning: bool = False
    ) -> None:
        """Record a Kubernetes Event."""
        ...


@dataclass
class Rollout:
    """One InferenceService's canary, driven through the Kubernetes API."""

    isvcs: InferenceServicesPort
    namespace: str
    name: str
    actor: str
    dry_run: bool = False
    out: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    poll_seconds: float = 2.0
    changes: list[Patch] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """``namespace/name``, as logs and messages name the service."""
        return f"{self.namespace}/{self.name}"

    def read(self) -> dict[str, Any]:
        """The InferenceService now."""
        return self.isvcs.get(self.namespace, self.name)

    def start(
        self,
        *,
        model_uri: str,
        percent: int,
        sha256: str | None = None,
        version: str | None = None,
        alias: str | None = None,
        mirror_rate: float | None = None,
        mirror_url: str | None = None,
    ) -> dict[str, Any]:
        """Point the canary at a new model with ``percent`` of the traffic, in one patch.

        ``alias`` is the registry alias ``model_uri`` was resolved from, kept in the audit.
        ``mirror_rate``: the canary mirrors that share of its rows to the stable model (at
        ``mirror_url``, else ``patches.stable_predict_url``), for the agreement analysis.
        """
        _check_percent(percent, allow_zero=False, allow_hundred=False)
        if mirror_rate is not None and not 0 < mirror_rate <= 1:
            raise RolloutError("--mirror-to-stable: expected a share above 0 and at most 1")

        def plan(isvc: dict[str, Any]) -> Patch:
            if deployment_mode(isvc) == STANDARD and not self.isvcs.supports_standard_canary():
                raise CanaryImpossibleError(
                    f"{self.ref} runs in Standard mode on a KServe without spec.canary (before "
                    "0.20), where canaryTrafficPercent is silently ignored; nothing was changed. "
                    "Upgrade KServe, or deploy the service in Knative mode."
                )
            stable_uri, _ = model_uris(isvc)
            to_version = version or version_from_uri(model_uri)
            notes = self._audit(
                "start",
                f"canary {model_uri} at {percent}%",
                version_from_uri(stable_uri),
                to_version,
            )
            if alias is not None:
                notes[MODEL_ALIAS] = alias
            mirror = None
            if mirror_rate is not None:
                mirror = (mirror_url or patches.stable_predict_url(isvc), mirror_rate)
            return patches.start_patch(
                isvc,
                model_uri=model_uri,
                sha256=sha256,
                percent=percent,
                version=to_version,
                annotations=notes,
                mirror=mirror,
            )

        return self._change(
            plan, "CanaryStarted", f"requested: canary {model_uri} at {percent}% of traffic"
        )

    def set_percent(self, percent: int) -> dict[str, Any]:
        """Move the canary to ``percent`` of the traffic."""
        _check_percent(percent, allow_zero=True, allow_hundred=False)

        def plan(isvc: dict[str, Any]) -> Patch | None:
            current = canary_percent_requested(isvc)
            if current is None:
                raise CanaryImpossibleError(f"{self.ref} has no canary; start one first")
            if current == percent:
                return None
            stable, canary = model_uris(isvc)
            notes = self._audit(
                "set",
                f"canary {current}% -> {percent}%",
                version_from_uri(stable),
                version_from_uri(canary),
            )
            return patches.percent_patch(isvc, percent, notes)

        return self._change(plan, "CanaryStepped", f"requested: canary at {percent}% of traffic")

    def promote(self, action: str = "promote", reason: str = "promoted") -> dict[str, Any]:
        """Give the canary all traffic and make it the stable model."""

        def plan(isvc: dict[str, Any]) -> Patch | None:
            if canary_percent_requested(isvc) is None:
                return None
            stable, canary = model_uris(isvc)
            notes = self._audit(action, reason, version_from_uri(stable), version_from_uri(canary))
            return patches.promote_patch(isvc, notes)

        return self._change(
            plan,
            "CanaryPromoted",
            "requested: all traffic on the canary (promote)",
            nothing="nothing to promote: no canary in progress",
        )

    def rollback(self, reason: str = "rolled back by hand") -> dict[str, Any]:
        """Send all traffic back to the stable model."""

        def plan(isvc: dict[str, Any]) -> Patch | None:
            current = canary_percent_requested(isvc)
            if current is None or (current == 0 and deployment_mode(isvc) != STANDARD):
                return None
            stable, canary = model_uris(isvc)
            notes = self._audit(
                "rollback", reason, version_from_uri(canary), version_from_uri(stable)
            )
            return patches.rollback_patch(isvc, notes)

        return self._change(
            plan,
            "CanaryRolledBack",
            f"requested: all traffic back to stable ({reason})",
            warning=True,
            nothing="nothing to roll back: no canary takes traffic",
        )

    def wait_for(self, percent: int | None, *, timeout: float) -> dict[str, Any]:
        """Wait until status shows the split (None: promoted); fail fast if the canary cannot start.

        Raises:
            StepTimeoutError: the split did not show in time, or the canary failed.
        """
        deadline = self.clock() + timeout
        while True:
            isvc = self.read()
            if split_reached(isvc, percent):
                self.out(f"{self.ref}: status shows {split_text(isvc)}")
                return isvc
            failure = canary_failure(isvc) if percent not in (None, 0) else None
            if failure is not None:
                raise StepTimeoutError(failure)
            if self.clock() >= deadline:
                wanted = (
                    "all traffic on the canary" if percent is None else f"the canary at {percent}%"
                )
                raise StepTimeoutError(
                    f"{self.ref}: status did not show {wanted} within {timeout:.0f}s "
                    f"(now: {split_text(isvc)}, ready={is_ready(isvc)})"
                )
            self.sleep(self.poll_seconds)

    def status_table(self) -> str:
        """Revisions (or predictors), their traffic, readiness, models and URLs."""
        return describe(self.read(), self.ref)

    def address(self) -> str:
        """The service's URL and the Host header to call it with."""
        return service_address(self.read(), self.name)

    def _audit(
        self, action: str, reason: str, from_version: str | None, to_version: str | None
    ) -> dict[str, str]:
        notes = audit_annotations(
            action=action,
            actor=self.actor,
            reason=reason,
            from_version=from_version,
            to_version=to_version,
        )
        notes[PHASE] = None  # type: ignore[assignment]  # a change ends any wait for approval
        return notes

    def _change(
        self,
        plan: Callable[[dict[str, Any]], Patch | None],
        reason: str,
        message: str,
        *,
        warning: bool = False,
        nothing: str = "nothing to change",
    ) -> dict[str, Any]:
        for _ in range(CONFLICT_RETRIES):
            isvc = self.read()
            body = plan(isvc)
            if body is None:
                self.out(f"{self.ref}: {nothing}")
                return isvc
            if self.dry_run:
                self.out(json.dumps(body, indent=2, sort_keys=True))
                return isvc
            try:
                updated = self.isvcs.patch(self.namespace, self.name, body)
            except ConflictError:
                logger.info("%s changed while deciding; reading it again", self.ref)
                continue
            self.changes.append(body)
            self.isvcs.record_event(updated, reason=reason, message=message, warning=warning)
            self.out(f"{self.ref}: {message}")
            return updated
        raise ConflictError(f"{self.ref} kept changing; gave up after {CONFLICT_RETRIES} attempts")


def _check_percent(percent: int, *, allow_zero: bool, allow_hundred: bool) -> None:
    low = 0 if allow_zero else 1
    high = 100 if allow_hundred else 99
    if not low <= percent <= high:
        raise RolloutError(
            f"canary percent must be within {low}..{high}, got {percent} (use promote for 100)"
        )
