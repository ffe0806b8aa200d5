"""A canary mirrored to the stable model, and the agreement gate; pure, no cluster.

Covers: ``start`` with a mirror sets the shadow URL and share on the canary only (Knative: the
new revision's env; Standard: the canary predictor's), with the stable URL Knative's ``prev``
tag gives; Standard mode wants the URL given; ``promote`` stops the mirroring; and the
analysis: too few mirrored rows is inconclusive, disagreement above ``max_disagreement``
fails, agreement passes.
"""

from __future__ import annotations

import pytest

from predictor.rollout import patches
from predictor.rollout.analysis import FAIL, INCONCLUSIVE, PASS, AnalysisConfig, Snapshot, decide
from predictor.rollout.errors import CanaryImpossibleError
from tests.k8s_emulator import knative_isvc, standard_isvc

NEW = "gs://models/registry/taxi/1.1.0/"
URL = "http://prev-taxi-predictor.ml.svc.cluster.local/v1/models/taxi:predict"


def env_of(fields: dict) -> dict[str, str]:  # type: ignore[type-arg]
    holder = fields["model"] if "model" in fields else fields["containers"][0]
    return {e["name"]: e["value"] for e in holder.get("env") or []}


def test_a_knative_canary_mirrors_to_the_prev_tag_and_stops_when_promoted() -> None:
    isvc = knative_isvc()
    url = patches.stable_predict_url(isvc)
    assert url == URL
    sent = patches.start_patch(
        isvc, model_uri=NEW, sha256=None, percent=10, version="1.1.0", annotations={},
        mirror=(url, 0.25),
    )  # fmt: skip
    env = env_of(sent["spec"]["predictor"])
    assert (env["PREDICTOR_MODEL_URI"], env["PREDICTOR_SHADOW_URL"]) == (NEW, URL)
    assert env["PREDICTOR_SHADOW_SAMPLE_RATE"] == "0.25"
    running = knative_isvc()
    running["spec"]["predictor"].update(sent["spec"]["predictor"])
    promoted = patches.promote_patch(running, {})["spec"]["predictor"]
    assert promoted["canaryTrafficPercent"] is None
    assert "PREDICTOR_SHADOW_URL" not in env_of(promoted)
    assert env_of(promoted)["PREDICTOR_MODEL_URI"] == NEW
    unmirrored = patches.promote_patch(knative_isvc(), {})["spec"]["predictor"]
    assert unmirrored == {"canaryTrafficPercent": None}  # no mirror: no new revision


def test_a_standard_canary_mirrors_to_the_url_given_and_its_promotion_stops_it() -> None:
    isvc = standard_isvc()
    with pytest.raises(CanaryImpossibleError, match="needs --mirror-url"):
        patches.stable_predict_url(isvc)
    given = "http://taxi-stable.ml.svc.cluster.local/v1/models/taxi:predict"
    sent = patches.start_patch(
        isvc, model_uri=NEW, sha256=None, percent=10, version="1.1.0", annotations={},
        mirror=(given, 1.0),
    )  # fmt: skip
    canary = sent["spec"]["canary"][0]["predictor"]
    assert env_of(canary)["PREDICTOR_SHADOW_URL"] == given
    assert "PREDICTOR_SHADOW_URL" not in str(sent["spec"]["predictor"])  # the stable: untouched
    running = standard_isvc()
    running["spec"]["predictor"]["name"] = sent["spec"]["predictor"]["name"]
    running["spec"]["canary"] = sent["spec"]["canary"]
    promoted = patches.promote_patch(running, {})["spec"]["predictor"]
    assert "PREDICTOR_SHADOW_URL" not in env_of(promoted)
    assert env_of(promoted)["PREDICTOR_MODEL_URI"] == NEW


def shot(version: str, agreement: dict[str, float] | None = None) -> Snapshot:
    return Snapshot(version, 500.0, 0.0, 0.004, {"long": 300.0, "short": 200.0}, agreement or {})


CONFIG = AnalysisConfig(
    prometheus="http://127.0.0.1:9", max_disagreement=0.1, min_agreement_rows=100
)


def test_agreement_needs_its_sample_then_gates_the_canary() -> None:
    few = decide(shot("1.0.0"), shot("1.1.0", {"agree": 40.0, "disagree": 10.0}), CONFIG)
    assert few.verdict == INCONCLUSIVE
    assert few.reasons == (
        "too few rows mirrored to the stable model to judge agreement (50; need 100)",
    )
    wrong = decide(shot("1.0.0"), shot("1.1.0", {"agree": 120.0, "disagree": 80.0}), CONFIG)
    assert wrong.verdict == FAIL
    assert wrong.reasons == (
        "canary disagrees with the stable model on 0.4000 of 200 mirrored rows > 0.1",
    )
    assert "agreement 0.6000 over 200 mirrored rows" in wrong.describe()
    right = decide(shot("1.0.0"), shot("1.1.0", {"agree": 195.0, "disagree": 5.0}), CONFIG)
    assert right.verdict == PASS
    unjudged = AnalysisConfig(prometheus="http://127.0.0.1:9")
    assert decide(shot("1.0.0"), shot("1.1.0"), unjudged).verdict == PASS
