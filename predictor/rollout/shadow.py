"""Shadow rollouts: add a shadow model, read how it compares, stop it or promote it.

Patches and texts are pure functions; ``ShadowRollout`` sends them.

The shadow is ``PREDICTOR_SHADOW_MODEL_URI`` (and its ``..._SHA256`` pin) beside the predictor's
model reference: in ``model.env`` for a runtime-served model, in the container's ``env`` for a
custom container (``model_ref`` finds which). Callers keep getting the stable model's answers.
``promote`` removes the shadow and starts a canary of its model at ``--percent``, in one patch.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass
from typing import Any

from predictor.rollout import model_ref, patches
from predictor.rollout.audit import version_from_uri
from predictor.rollout.controller import Rollout
from predictor.rollout.errors import CanaryImpossibleError
from predictor.rollout.status import STANDARD, deployment_mode

SHADOW_URI_ENV = "PREDICTOR_SHADOW_MODEL_URI"
SHADOW_SHA_ENV = "PREDICTOR_SHADOW_MODEL_SHA256"


def _holder(predictor: dict[str, Any]) -> tuple[str, int | None]:
    """Where the predictor's env lives: ``model`` (runtime) or a container (by index)."""
    ref = model_ref.require(predictor)
    if ref.where.startswith("model."):
        return "model", None
    containers = predictor.get("containers") or []
    index = next((i for i, c in enumerate(containers) if c.get("name") == model_ref.CONTAINER), 0)
    return "containers", index


def shadow_of(predictor: dict[str, Any]) -> tuple[str | None, str | None]:
    """The shadow model URI and pin the predictor is set with (None, None when there is none)."""
    kind, index = _holder(predictor)
    holder = predictor["model"] if index is None else predictor["containers"][index]
    env = {e.get("name"): e.get("value") for e in holder.get("env") or []}
    return env.get(SHADOW_URI_ENV), env.get(SHADOW_SHA_ENV)


def with_shadow(predictor: dict[str, Any], uri: str | None, sha256: str | None) -> dict[str, Any]:
    """The predictor fields to send so that its shadow is ``uri`` (None: no shadow), whole.

    ``model`` or ``containers`` as a merge patch takes them: an env left empty is ``None``.
    """
    kind, index = _holder(predictor)
    fields = copy.deepcopy(predictor[kind])
    holder = fields if index is None else fields[index]
    env = [
        e for e in holder.get("env") or [] if e.get("name") not in (SHADOW_URI_ENV, SHADOW_SHA_ENV)
    ]
    if uri is not None:
        env.append({"name": SHADOW_URI_ENV, "value": uri})
        if sha256 is not None:
            env.append({"name": SHADOW_SHA_ENV, "value": sha256})
    holder["env"] = env or None  # in a merge patch, None deletes the field
    return {kind: fields}


def start_patch(
    isvc: dict[str, Any], uri: str, sha256: str | None, annotations: dict[str, str]
) -> dict[str, Any]:
    """Give the stable predictor a shadow."""
    predictor = isvc["spec"]["predictor"]
    if model_ref.require(predictor).uri == uri:
        raise CanaryImpossibleError(f"the stable predictor already serves {uri}")
    return {
        "metadata": {
            "resourceVersion": isvc["metadata"].get("resourceVersion"),
            "annotations": annotations,
        },
        "spec": {"predictor": with_shadow(predictor, uri, sha256)},
    }


def stop_patch(isvc: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any] | None:
    """Take the shadow away; None when there is none."""
    predictor = isvc["spec"]["predictor"]
    if shadow_of(predictor)[0] is None:
        return None
    return {
        "metadata": {
            "resourceVersion": isvc["metadata"].get("resourceVersion"),
            "annotations": annotations,
        },
        "spec": {"predictor": with_shadow(predictor, None, None)},
    }


def promote_patch(
    isvc: dict[str, Any], percent: int, annotations: dict[str, str]
) -> dict[str, Any]:
    """Remove the shadow and start a canary of its model at ``percent``, in one patch.

    Raises:
        CanaryImpossibleError: there is no shadow, or a canary cannot start now.
    """
    predictor = isvc["spec"]["predictor"]
    uri, sha256 = shadow_of(predictor)
    if uri is None:
        raise CanaryImpossibleError("there is no shadow to promote; start one first")
    without = copy.deepcopy(isvc)
    without["spec"]["predictor"].update(with_shadow(predictor, None, None))
    body = patches.start_patch(
        without,
        model_uri=uri,
        sha256=sha256,
        percent=percent,
        version=version_from_uri(uri),
        annotations=annotations,
    )
    if deployment_mode(isvc) == STANDARD:
        body["spec"]["predictor"].update(with_shadow(predictor, None, None))
    return body


def agreement_query(name: str, namespace: str, window: str) -> str:
    """PromQL: rows per version, shadow version and agreement over ``window``."""
    selector = f'model="{name}"'
    if namespace:
        selector += f',namespace="{namespace}"'
    return (
        "sum by (version, shadow_version, agreement) "
        f"(increase(predictor_shadow_predictions_total{{{selector}}}[{window}]))"
    )


def describe_agreement(series: list[tuple[dict[str, str], float]], window: str) -> str:
    """The agreement per (version, shadow version), with its sample size."""
    pairs: dict[tuple[str, str], dict[str, float]] = {}
    for labels, value in series:
        key = (labels.get("version", "?"), labels.get("shadow_version", "?"))
        pairs.setdefault(key, {})[labels.get("agreement", "?")] = value
    if not pairs:
        return f"no shadowed rows in the last {window}"
    lines = []
    for (version, shadow), counts in sorted(pairs.items()):
        agree, total = counts.get("agree", 0.0), sum(counts.values())
        rate = agree / total if total else float("nan")
        lines.append(
            f"{version} vs shadow {shadow}: agreement {rate:.4f} over {total:.0f} rows "
            f"(last {window})"
        )
    return "\n".join(lines)


@dataclass
class ShadowRollout:
    """The shadow commands, through a canary ``Rollout`` (its reads, patches, audit, events)."""

    rollout: Rollout

    def start(self, uri: str, sha256: str | None = None) -> dict[str, Any]:
        """Add the shadow."""
        notes = self.rollout._audit("shadow-start", f"shadow {uri}", None, version_from_uri(uri))
        return self.rollout._change(
            lambda isvc: start_patch(isvc, uri, sha256, notes),
            "ShadowStarted",
            f"shadow {uri} added",
        )

    def stop(self) -> dict[str, Any]:
        """Remove the shadow."""
        notes = self.rollout._audit("shadow-stop", "shadow removed", None, None)
        return self.rollout._change(
            lambda isvc: stop_patch(isvc, notes),
            "ShadowStopped",
            "shadow removed",
            nothing="no shadow to remove",
        )

    def promote(self, percent: int) -> dict[str, Any]:
        """Turn the shadow into a canary at ``percent``."""
        if not 1 <= percent <= 99:
            raise CanaryImpossibleError(f"canary percent must be within 1..99, got {percent}")
        notes = self.rollout._audit(
            "shadow-promote", f"shadow promoted to a canary at {percent}%", None, None
        )
        return self.rollout._change(
            lambda isvc: promote_patch(isvc, percent, notes),
            "ShadowPromoted",
            f"shadow promoted to a canary at {percent}%",
        )

    def configured(self) -> str:
        """Which shadow the stable predictor has."""
        uri, sha256 = shadow_of(self.rollout.read()["spec"]["predictor"])
        if uri is None:
            return f"{self.rollout.ref}: no shadow"
        pinned = f" (sha256 {sha256[:12]})" if sha256 else ""
        return f"{self.rollout.ref}: shadow {uri}{pinned}"


def run_command(args: argparse.Namespace, rollout: Rollout) -> None:
    """The ``shadow`` subcommands."""
    shadow = ShadowRollout(rollout)
    if args.shadow_command == "start":
        shadow.start(args.model_uri, args.model_sha256)
    elif args.shadow_command == "stop":
        shadow.stop()
    elif args.shadow_command == "promote":
        shadow.promote(args.percent)
    else:
        rollout.out(shadow.configured())
        if args.prometheus:
            from predictor.rollout.prometheus import Prometheus

            prometheus = Prometheus(args.prometheus)
            try:
                series = prometheus.query(agreement_query(args.name, "", args.window))
            finally:
                prometheus.close()
            rollout.out(describe_agreement(series, args.window))
