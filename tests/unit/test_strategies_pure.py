"""The pure parts of the shadow and bandit strategies: comparing, reporting, choosing arms."""

from __future__ import annotations

import re
import threading
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from predictor.bandit.policies import ArmStats, choose, selection_probabilities
from predictor.bandit.router import reward_of
from predictor.bandit.state import MemoryState
from predictor.errors import FeedbackNotFoundError, PayloadError
from predictor.metrics.series import SHADOW_DROPPED, SHADOW_PREDICTIONS
from predictor.settings import Settings
from predictor.shadow.compare import compare
from predictor.shadow.report import psi, summarize
from predictor.shadow.runner import Offered, ShadowRunner

CLASSES = ("no", "yes")


def test_labels_agree_row_by_row_and_probability_gaps_are_measured() -> None:
    primary = {
        "predict": np.array(["yes", "no", "yes"]),
        "predict_proba": np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]]),
    }
    shadow = {
        "predict": np.array(["yes", "yes", "yes"]),
        "predict_proba": np.array([[0.3, 0.7], [0.4, 0.6], [0.4, 0.6]]),
    }
    found = compare(primary, shadow, classes=CLASSES, shadow_classes=CLASSES)
    assert found.agree.tolist() == [True, False, True]
    assert found.proba_delta is not None
    assert np.allclose(found.proba_delta, np.array([0.1, 0.5, 0.0]))


def test_labels_come_from_probabilities_when_predict_was_not_asked_for() -> None:
    primary = {"predict_proba": np.array([[0.2, 0.8], [0.9, 0.1]])}
    shadow = {"predict": np.array(["yes", "yes"])}
    found = compare(primary, shadow, classes=CLASSES, shadow_classes=CLASSES)
    assert found.agree.tolist() == [True, False]
    assert found.proba_delta is None


def test_regression_values_agree_within_the_tolerance() -> None:
    primary = {"predict": np.array([1.0, 2.0, 3.0])}
    shadow = {"predict": np.array([1.0 + 1e-9, 2.5, 3.0])}
    found = compare(primary, shadow, classes=None, shadow_classes=None, tolerance=1e-6)
    assert found.agree.tolist() == [True, False, True]


def test_the_report_counts_agreement_confusion_and_psi() -> None:
    records = [
        {"version": "1", "shadow_version": "2", "agree": a == b,
         "outputs": {"predict": a}, "shadow_outputs": {"predict": b}}
        for a, b in [("x", "x"), ("x", "y"), ("y", "y"), ("y", "y")]
    ]  # fmt: skip
    report = summarize(records)
    assert (report.rows, report.agreed) == (4, 3)
    assert report.confusion[("x", "y")] == 1 and report.confusion[("y", "y")] == 2
    assert report.psi() == pytest.approx(psi([2, 2], [1, 3]))
    assert psi([5, 5], [5, 5]) == 0.0


@pytest.mark.parametrize("policy", ["thompson", "epsilon_greedy", "ucb1"])
def test_each_policy_prefers_the_arm_with_the_better_record(policy: str) -> None:
    arms = [ArmStats(500, 500, 150.0), ArmStats(500, 500, 350.0)]
    rng = np.random.default_rng(0)
    picks = [choose(policy, arms, rng, epsilon=0.1) for _ in range(1000)]
    assert picks.count(1) >= 850
    probabilities = selection_probabilities(policy, arms, rng, epsilon=0.1)
    assert probabilities[1] > 0.85 and sum(probabilities) == pytest.approx(1.0)


def test_ucb1_tries_every_arm_once_first() -> None:
    arms = [ArmStats(3, 3, 3.0), ArmStats(0, 0, 0.0)]
    assert choose("ucb1", arms, np.random.default_rng(0)) == 1


def test_memory_state_takes_feedback_once_per_id_until_it_expires() -> None:
    now = [0.0]
    state = MemoryState(["a", "b"], ttl_s=10, clock=lambda: now[0])
    state.pulled(1, "r1")
    assert state.rewarded("r1", 1.0) is True
    assert state.rewarded("r1", 0.0) is False
    assert state.stats()[1] == ArmStats(1, 1, 1.0)
    state.pulled(0, "r2")
    now[0] = 11.0
    with pytest.raises(FeedbackNotFoundError):
        state.rewarded("r2", 1.0)


@pytest.mark.parametrize(
    "body",
    [[], {"id": 3, "reward": 1}, {"id": "x", "reward": "1"}, {"id": "x", "reward": True},
     {"id": "x", "reward": -0.1}, {"id": "x", "reward": float("nan")}, {"id": "", "reward": 1}],
)  # fmt: skip
def test_feedback_bodies_are_checked(body: object) -> None:
    with pytest.raises(PayloadError):
        reward_of(body)
    assert reward_of({"id": "x", "reward": 1}) == ("x", 1.0)


class SlowShadow:
    """A shadow that answers only when let go (to fill the queue)."""

    version = "2"
    classes: tuple[Any, ...] | None = CLASSES

    def __init__(self) -> None:
        self.go = threading.Event()

    def answer(self, features: Any, wanted: Any = None) -> dict[str, np.ndarray]:
        self.go.wait(10)
        return {"predict": np.array(["yes"] * len(features))}


def test_a_full_shadow_queue_drops_and_counts_and_never_blocks() -> None:
    target = SlowShadow()
    runner = ShadowRunner(model="m-drop", version="1", classes=CLASSES, target=target, queue_size=2)
    results = {"predict": np.array(["yes"])}
    dropped = SHADOW_DROPPED.labels("m-drop", "1")
    before = dropped._value.get()
    for i in range(10):  # the worker holds one, the queue two: the rest are dropped at once
        runner.offer(f"r{i}", np.zeros((1, 2)), 1, results)
    assert dropped._value.get() - before >= 7
    target.go.set()
    runner.stop()
    agreed = SHADOW_PREDICTIONS.labels("m-drop", "1", "2", "agree")._value.get()
    assert 1 <= agreed <= 3


class RecordingShadow:
    """A shadow that says which outputs it was asked for."""

    version = "2"
    classes: tuple[Any, ...] | None = CLASSES

    def __init__(self) -> None:
        self.asked: list[Any] = []

    def answer(self, features: Any, wanted: Any = None) -> dict[str, np.ndarray]:
        self.asked.append(wanted)
        return {"predict": np.array(["yes"] * len(features))}


def test_without_a_log_the_shadow_computes_only_what_the_primary_did() -> None:
    target = RecordingShadow()
    runner = ShadowRunner(model="m-wanted", version="1", classes=CLASSES, target=target)
    runner.handle(
        [
            Offered(0.0, "a", np.zeros((1, 2)), 1, {"predict": np.array(["yes"])}),
            Offered(0.0, "b", np.zeros((1, 2)), 1, {"predict": np.array(["no"])}),
        ]
    )
    assert target.asked == [frozenset({"predict"})]


class SignShadow:
    """A shadow that says "yes" for a positive first feature, with matching probabilities."""

    version = "2"
    classes: tuple[Any, ...] | None = CLASSES

    def answer(self, features: Any, wanted: Any = None) -> dict[str, np.ndarray]:
        yes = np.asarray(features)[:, 0] > 0
        return {
            "predict": np.where(yes, "yes", "no"),
            "predict_proba": np.column_stack([~yes, yes]).astype(float),
        }


def test_requests_that_asked_for_different_outputs_are_each_compared_with_their_own_rows() -> None:
    runner = ShadowRunner(model="m-groups", version="1", classes=CLASSES, target=SignShadow())
    proba = {"predict": np.array(["no"]), "predict_proba": np.array([[0.4, 0.6]])}
    runner.handle(
        [
            Offered(0.0, "a", np.array([[1.0], [-1.0]]), 2, {"predict": np.array(["yes", "no"])}),
            Offered(0.0, "b", np.array([[1.0]]), 1, proba),  # shadow: yes
            Offered(0.0, "c", np.array([[-1.0]]), 1, {"predict": np.array(["yes"])}),  # shadow: no
        ]
    )
    agreed = SHADOW_PREDICTIONS.labels("m-groups", "1", "2", "agree")._value.get()
    disagreed = SHADOW_PREDICTIONS.labels("m-groups", "1", "2", "disagree")._value.get()
    assert (agreed, disagreed) == (2, 2)


def test_each_bandit_arm_loads_with_its_own_pin() -> None:
    a, b = "a" * 64, "B" * 64
    settings = Settings(
        bandit_model_uris="x.joblib,y.joblib", bandit_model_sha256s=f"{a}, sha256:{b}"
    )
    assert [settings.for_arm(i).model_sha256 for i in (0, 1)] == [a, "b" * 64]
    assert Settings(bandit_model_uris="x.joblib,y.joblib").for_arm(1).model_sha256 is None
    with pytest.raises(ValidationError, match="expected 64 hex characters"):
        Settings(bandit_model_uris="x.joblib,y.joblib", bandit_model_sha256s=f"{a},nope")


def test_an_experiment_is_the_bandit_with_fixed_weights_and_its_own_pins() -> None:
    a, b = "a" * 64, "B" * 64
    uris = "x.joblib,y.joblib"
    settings = Settings(
        experiment_model_uris=uris,
        experiment_weights="90, 10",
        experiment_model_sha256s=f"{a}, sha256:{b}",
        sticky_header="X-User-Id",
    )
    section = settings.bandit
    assert (section.policy, section.weights, section.sticky_header) == (
        "fixed",
        (90, 10),
        "x-user-id",
    )
    assert [settings.for_arm(i).model_sha256 for i in (0, 1)] == [a, "b" * 64]
    assert settings.for_arm(0).experiment_model_uris is None  # an arm is one model
    refusals = {
        "expected one weight per arm (2), got 1": {"experiment_model_uris": uris, "experiment_weights": "90"},
        "at least one weight must be above 0": {"experiment_model_uris": uris, "experiment_weights": "0,0"},
        "weights are for experiment_model_uris": {"model_uri": "x.joblib", "experiment_weights": "1"},
        "set one, not both": {"experiment_model_uris": uris, "experiment_weights": "1,1", "bandit_model_uris": uris},
        "a learning bandit's shares change": {"bandit_model_uris": uris, "sticky_header": "x-user-id"},
        "expected 64 hex characters": {"experiment_model_uris": uris, "experiment_weights": "1,1", "experiment_model_sha256s": f"{a},nope"},
    }  # fmt: skip
    for message, fields in refusals.items():
        with pytest.raises(ValidationError, match=re.escape(message)):
            Settings.model_validate(fields)
