"""Webhooks around an automated canary, Flagger's set; the HTTP calls are this module's only edge.

- ``pre-rollout``: asked before the first step; any answer but 2xx holds the rollout.
- ``confirm-promotion``: asked before the promotion; any answer but 2xx holds it.
- ``rollback``: asked at each analysis window; a 2xx answer rolls the canary back now (an
  operator's or a system's "stop"), anything else lets the analysis go on.
- ``post-rollout``: told once the rollout is over (promoted or rolled back); its answer is
  only logged.

Each call POSTs one JSON payload (``payload``): the service, the phase, both versions, the
canary's share and the last analysis. A call that times out, cannot connect or gets a 5xx is
tried once more. Every exchange is told (``out``) and recorded as a Kubernetes Event by the
caller, so the audit shows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from predictor.rollout.errors import RolloutError

PHASES = ("pre-rollout", "confirm-promotion", "post-rollout", "rollback")


@dataclass(frozen=True)
class Webhook:
    """One webhook: the phase it is asked at, and its URL."""

    phase: str
    url: str


def parse_webhook(text: str) -> Webhook:
    """``PHASE=URL`` as a ``Webhook``.

    Raises:
        RolloutError: not ``PHASE=URL`` with a known phase and an http(s) URL.
    """
    phase, _, url = text.partition("=")
    if phase not in PHASES:
        raise RolloutError(f"--webhook: expected PHASE=URL with PHASE one of {', '.join(PHASES)}")
    if not url.startswith(("http://", "https://")):
        raise RolloutError("--webhook: expected an http:// or https:// URL after PHASE=")
    return Webhook(phase, url)


@dataclass(frozen=True)
class Exchange:
    """What one webhook call did: each attempt's status code, or its error."""

    phase: str
    url: str
    attempts: tuple[str, ...]
    approved: bool

    def describe(self) -> str:
        """One line for the log and the Event."""
        answer = "2xx: go on" if self.approved else "no 2xx"
        return f"webhook {self.phase} {self.url}: {', '.join(self.attempts)} ({answer})"


def payload(
    *,
    name: str,
    namespace: str,
    phase: str,
    stable_version: str | None,
    canary_version: str | None,
    percent: int | None,
    analysis: dict[str, Any] | None,
) -> dict[str, Any]:
    """The JSON body every webhook receives."""
    return {
        "name": name,
        "namespace": namespace,
        "phase": phase,
        "stableVersion": stable_version,
        "canaryVersion": canary_version,
        "canaryPercent": percent,
        "analysis": analysis,
    }


@dataclass
class Webhooks:
    """The webhooks of one ``auto`` run."""

    hooks: Sequence[Webhook] = ()
    timeout_s: float = 10.0
    retry_after_s: float = 1.0
    client: httpx.Client | None = None
    sleep: Callable[[float], None] = time.sleep
    exchanges: list[Exchange] = field(default_factory=list)

    def has(self, phase: str) -> bool:
        """Whether a webhook is set for ``phase``."""
        return any(h.phase == phase for h in self.hooks)

    def ask(self, phase: str, body: dict[str, Any]) -> list[Exchange]:
        """Call every webhook of ``phase`` with ``body``; what each did (empty: none is set)."""
        done = [self._call(hook, body) for hook in self.hooks if hook.phase == phase]
        self.exchanges.extend(done)
        return done

    def close(self) -> None:
        """Close the HTTP connections (a later call opens new ones)."""
        if self.client is not None:
            self.client.close()
            self.client = None

    def _call(self, hook: Webhook, body: dict[str, Any]) -> Exchange:
        if self.client is None:
            self.client = httpx.Client(timeout=self.timeout_s)
        attempts: list[str] = []
        for attempt in range(2):
            if attempt:
                self.sleep(self.retry_after_s)
            try:
                response = self.client.post(hook.url, json=body, timeout=self.timeout_s)
            except httpx.TimeoutException:
                attempts.append(f"timed out after {self.timeout_s:g}s")
                continue
            except httpx.HTTPError as e:
                attempts.append(f"failed: {type(e).__name__}")
                continue
            attempts.append(f"HTTP {response.status_code}")
            if response.status_code < 500:
                return Exchange(hook.phase, hook.url, tuple(attempts), response.is_success)
        return Exchange(hook.phase, hook.url, tuple(attempts), False)
