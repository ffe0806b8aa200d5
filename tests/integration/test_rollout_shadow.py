"""Shadow rollouts against the Kubernetes API emulator, through the real ``kubernetes`` client.

In every model style and both deployment modes: ``start`` adds the shadow beside the model
reference (and only there), ``status`` reads the agreement from a real Prometheus query answer,
``stop`` removes it, ``promote`` removes it and starts a canary of its model in one patch; each
change carries the audit annotations and an Event.
"""

from __future__ import annotations

from typing import Any

import pytest

from predictor.rollout.audit import ACTION, ACTOR, TO_VERSION
from predictor.rollout.shadow import (
    SHADOW_SHA_ENV,
    SHADOW_URI_ENV,
    ShadowRollout,
    describe_agreement,
    shadow_of,
)
from tests.integration.test_rollout_k8s import (  # the emulator fixture, and helpers
    emulator,  # noqa: F401  (a fixture, used by name)
    model_of,
    patches_sent,
    rollout,
)
from tests.k8s_emulator import (
    CRD,
    ISVC,
    STYLES,
    Emulator,
    FakeKServe,
    crd,
    knative_isvc,
    standard_isvc,
    with_style,
)

SHADOW = "gs://models/registry/taxi/1.1.0/"
DIGEST = "a" * 64


def env_names(predictor: dict[str, Any], style: str) -> list[str]:
    holder = predictor["model"] if style == "storage-uri" else predictor["containers"][0]
    return [e["name"] for e in holder.get("env") or []]


@pytest.mark.parametrize("mode", ["knative", "standard"])
@pytest.mark.parametrize("style", STYLES)
def test_start_stop_and_promote_in_every_style(
    emulator: Emulator,  # noqa: F811  (the fixture imported above)
    mode: str,
    style: str,
) -> None:
    document = knative_isvc() if mode == "knative" else standard_isvc()
    emulator.put(ISVC, "ml", "taxi", with_style(document, style))
    emulator.put(CRD, None, "inferenceservices.serving.kserve.io", crd(with_canary=True))
    kserve = FakeKServe(emulator, "ml", "taxi")
    kserve.reconcile()
    driver = rollout(emulator, kserve)
    shadow = ShadowRollout(driver)

    shadow.start(SHADOW, DIGEST)
    started = patches_sent(emulator)[-1].data
    predictor = started["spec"]["predictor"]
    assert shadow_of(predictor) == (SHADOW, DIGEST)
    assert env_names(predictor, style)[-2:] == [SHADOW_URI_ENV, SHADOW_SHA_ENV]
    assert model_of(predictor, style) == "gs://models/registry/taxi/1.0.0/"  # stable unchanged
    notes = started["metadata"]["annotations"]
    assert (notes[ACTION], notes[ACTOR], notes[TO_VERSION]) == ("shadow-start", "alice", "1.1.0")
    assert "shadow gs://models/registry/taxi/1.1.0/" in shadow.configured()

    shadow.stop()
    stopped = patches_sent(emulator)[-1].data["spec"]["predictor"]
    assert shadow_of(stopped) == (None, None)
    assert SHADOW_URI_ENV not in env_names(stopped, style)
    before = len(patches_sent(emulator))
    shadow.stop()  # nothing to remove: nothing sent
    assert len(patches_sent(emulator)) == before

    shadow.start(SHADOW)
    shadow.promote(10)
    promoted = patches_sent(emulator)[-1].data["spec"]
    canary = promoted["predictor"] if mode == "knative" else promoted["canary"][0]["predictor"]
    assert model_of(canary, style) == SHADOW
    assert SHADOW_URI_ENV not in env_names(canary, style)
    if mode == "knative":
        assert promoted["predictor"]["canaryTrafficPercent"] == 10
    else:
        assert promoted["canary"][0]["trafficPercent"] == 10
        assert SHADOW_URI_ENV not in env_names(promoted["predictor"], style)
    reasons = [r.data["reason"] for r in emulator.requests("POST") if "events" in str(r.url)]
    assert reasons[-4:] == ["ShadowStarted", "ShadowStopped", "ShadowStarted", "ShadowPromoted"]


def test_agreement_is_told_with_its_sample_size() -> None:
    series = [
        ({"version": "1.0.0", "shadow_version": "1.1.0", "agreement": "agree"}, 930.0),
        ({"version": "1.0.0", "shadow_version": "1.1.0", "agreement": "disagree"}, 70.0),
    ]
    assert describe_agreement(series, "10m") == (
        "1.0.0 vs shadow 1.1.0: agreement 0.9300 over 1000 rows (last 10m)"
    )
    assert describe_agreement([], "1h") == "no shadowed rows in the last 1h"
