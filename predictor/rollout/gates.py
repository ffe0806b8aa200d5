"""What may stop an automated canary besides its metrics: webhooks and a manual approval.

``Gates`` are given to ``auto.run_auto``: its webhooks (``webhooks``), and whether it pauses
before the promotion. A pause sets ``awaiting-approval`` on the InferenceService (with the
audit annotations and an Event); ``resume`` promotes only from there, and ``rollback`` aborts
as always. Each webhook exchange is recorded as an Event on the service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from predictor.rollout.audit import AWAITING_APPROVAL, PHASE
from predictor.rollout.controller import Rollout
from predictor.rollout.errors import CanaryImpossibleError, RolloutFailedError
from predictor.rollout.webhooks import Exchange, Webhooks


@dataclass
class Gates:
    """The webhooks of an ``auto`` run, and whether it waits for approval before promoting."""

    webhooks: Webhooks = field(default_factory=Webhooks)
    pause_before_promote: bool = False

    def tell(self, rollout: Rollout, phase: str, body: dict[str, Any]) -> list[Exchange]:
        """Call ``phase``'s webhooks; each exchange is logged and recorded as an Event."""
        exchanges = self.webhooks.ask(phase, body)
        if exchanges and not rollout.dry_run:
            isvc = rollout.read()
            for exchange in exchanges:
                rollout.out(f"{rollout.ref}: {exchange.describe()}")
                rollout.isvcs.record_event(
                    isvc,
                    reason="WebhookApproved" if exchange.approved else "WebhookHeld",
                    message=exchange.describe(),
                    warning=not exchange.approved,
                )
        return exchanges

    def hold_until_approved(
        self,
        rollout: Rollout,
        phase: str,
        body: Callable[[], dict[str, Any]],
        *,
        tries: int,
        interval_s: float,
        where: str,
    ) -> None:
        """Ask ``phase``'s webhooks until all answer 2xx, ``tries`` times at most.

        Raises:
            RolloutFailedError: they did not approve; the canary is left ``where`` it is.
        """
        if not self.webhooks.has(phase):
            return
        for attempt in range(tries):
            if all(e.approved for e in self.tell(rollout, phase, body())):
                return
            if attempt < tries - 1:
                rollout.out(f"{rollout.ref}: held by the {phase} webhook; asking again")
                rollout.sleep(interval_s)
        raise RolloutFailedError(
            f"held: the {phase} webhook did not approve after {tries} tries; the canary is left "
            f"{where}. Rerun `auto` when it approves, or decide with `promote`/`rollback`."
        )

    def rollback_asked(self, rollout: Rollout, body: dict[str, Any]) -> bool:
        """Whether a ``rollback`` webhook answers 2xx: roll back now."""
        return any(e.approved for e in self.tell(rollout, "rollback", body))


def pause(rollout: Rollout, percent: int, version: str | None) -> dict[str, Any]:
    """Mark the service as awaiting approval to promote (audit annotations and an Event)."""

    def plan(isvc: dict[str, Any]) -> dict[str, Any]:
        notes: dict[str, Any] = rollout._audit(
            "pause", f"awaiting approval to promote from {percent}%", None, version
        )
        notes[PHASE] = AWAITING_APPROVAL
        meta = {"resourceVersion": isvc["metadata"].get("resourceVersion"), "annotations": notes}
        return {"metadata": meta}

    return rollout._change(
        plan,
        "CanaryAwaitingApproval",
        f"awaiting approval at {percent}%: `canary resume {rollout.name}` promotes, "
        f"`canary rollback {rollout.name}` aborts",
    )


def resume(rollout: Rollout) -> dict[str, Any]:
    """Promote a canary that awaits approval.

    Raises:
        CanaryImpossibleError: the service does not await approval.
    """
    annotations = rollout.read()["metadata"].get("annotations") or {}
    if annotations.get(PHASE) != AWAITING_APPROVAL:
        raise CanaryImpossibleError(
            f"{rollout.ref} does not await approval; `auto --pause-before-promote` sets that"
        )
    return rollout.promote("resume", f"approved by {rollout.actor}")
