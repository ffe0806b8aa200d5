"""Rollout logic as pure functions: status parsing on recorded InferenceServices, patches, analysis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from predictor.rollout import patches
from predictor.rollout.analysis import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    AnalysisConfig,
    Snapshot,
    decide,
    parse_duration,
    population_stability_index,
    snapshot,
)
from predictor.rollout.audit import STABLE_SHA256, STABLE_URI, version_from_uri
from predictor.rollout.errors import CanaryImpossibleError, RolloutError
from predictor.rollout.status import (
    KNATIVE,
    STANDARD,
    canary_failure,
    canary_percent_requested,
    deployment_mode,
    is_ready,
    model_uris,
    split_reached,
    traffic_split,
)
from tests.k8s_emulator import knative_isvc, standard_isvc

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "isvc"


def recorded(name: str) -> dict[str, Any]:
    isvc: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return isvc


def test_knative_canary_at_ten_percent() -> None:
    isvc = recorded("knative-canary-10")
    assert deployment_mode(isvc) == KNATIVE
    assert is_ready(isvc)
    assert [(t.name, t.percent, t.latest) for t in traffic_split(isvc)] == [
        ("taxi-predictor-00001", 90, False),
        ("taxi-predictor-00002", 10, True),
    ]
    assert canary_percent_requested(isvc) == 10
    assert split_reached(isvc, 10)
    assert not split_reached(isvc, 25)
    assert not split_reached(isvc, None)
    assert model_uris(isvc) == (
        "gs://models/registry/taxi/1.0.0/",
        "gs://models/registry/taxi/1.1.0/",
    )
    assert canary_failure(isvc) is None


def test_a_step_is_not_done_until_the_controller_caught_up() -> None:
    isvc = recorded("knative-canary-10")
    isvc["metadata"]["generation"] = 3  # a newer spec the controller has not seen yet
    assert not is_ready(isvc)
    assert not split_reached(isvc, 10)


def test_knative_promoted() -> None:
    isvc = recorded("knative-promoted")
    assert split_reached(isvc, None)
    assert canary_percent_requested(isvc) is None
    assert model_uris(isvc) == ("gs://models/registry/taxi/1.1.0/", None)


def test_knative_rolled_back_is_judged_by_traffic_not_ready() -> None:
    isvc = recorded("knative-rolled-back")
    isvc["status"]["conditions"][-1]["status"] = "False"  # KServe may keep Ready False for a while
    assert split_reached(isvc, 0)


def test_a_canary_that_never_becomes_ready_says_why() -> None:
    isvc = recorded("knative-canary-failed")
    failure = canary_failure(isvc)
    assert failure is not None
    assert failure.startswith("revision taxi-predictor-00003 is not ready: RevisionMissing")
    assert "failed its acceptance checks" in failure
    assert not split_reached(isvc, 10)


def test_standard_mode_canary() -> None:
    isvc = recorded("standard-canary-10")
    assert deployment_mode(isvc) == STANDARD
    assert [(t.name, t.percent) for t in traffic_split(isvc)] == [
        ("taxi-stable", 90),
        ("taxi-1-1-0", 10),
    ]
    assert split_reached(isvc, 10)
    assert model_uris(isvc) == (
        "gs://models/registry/taxi/1.0.0/",
        "gs://models/registry/taxi/1.1.0/",
    )


def test_modelmesh_has_no_canary() -> None:
    isvc = knative_isvc()
    isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "ModelMesh"
    with pytest.raises(CanaryImpossibleError, match="'ModelMesh' has no canary support"):
        deployment_mode(isvc)


def test_knative_start_patch_sets_model_and_percent_in_one_patch() -> None:
    isvc = knative_isvc()
    isvc["metadata"]["resourceVersion"] = "7"
    body = patches.start_patch(
        isvc,
        model_uri="gs://models/registry/taxi/1.1.0/",
        sha256=None,
        percent=10,
        version="1.1.0",
        annotations={"a": "b"},
    )
    assert body["metadata"] == {
        "resourceVersion": "7",
        "annotations": {
            "a": "b",
            STABLE_URI: "gs://models/registry/taxi/1.0.0/",
            STABLE_SHA256: None,  # the stable pins no digest
        },
    }
    predictor = body["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert predictor["containers"][0]["env"] == [
        {"name": "PREDICTOR_MODEL_URI", "value": "gs://models/registry/taxi/1.1.0/"},
        {"name": "PREDICTOR_DOWNLOAD_DIR", "value": "/mnt/models"},
    ]
    assert isvc["spec"]["predictor"]["containers"][0]["env"][0]["value"].endswith(
        "1.0.0/"
    )  # input untouched


def test_a_pinned_stable_needs_the_new_digest() -> None:
    isvc = knative_isvc()
    isvc["spec"]["predictor"]["containers"][0]["env"].append(
        {"name": "PREDICTOR_MODEL_SHA256", "value": "a" * 64}
    )
    with pytest.raises(CanaryImpossibleError, match="pass --model-sha256"):
        patches.start_patch(
            isvc, model_uri="gs://m/2/", sha256=None, percent=10, version=None, annotations={}
        )
    body = patches.start_patch(
        isvc, model_uri="gs://m/2/", sha256="b" * 64, percent=10, version=None, annotations={}
    )
    env = body["spec"]["predictor"]["containers"][0]["env"]
    assert env[:2] == [
        {"name": "PREDICTOR_MODEL_URI", "value": "gs://m/2/"},
        {"name": "PREDICTOR_MODEL_SHA256", "value": "b" * 64},
    ]


def test_standard_start_patch_adds_a_named_canary_without_scaling_fields() -> None:
    body = patches.start_patch(
        standard_isvc(),
        model_uri="gs://models/registry/taxi/1.1.0/",
        sha256=None,
        percent=10,
        version="1.1.0",
        annotations={},
    )
    (canary,) = body["spec"]["canary"]
    assert canary["trafficPercent"] == 10
    assert canary["predictor"]["name"] == "taxi-1-1-0"
    assert body["spec"]["predictor"] == {"name": "taxi-stable"}
    for forbidden in ("maxReplicas", "scaleMetric", "scaleTarget"):
        assert forbidden not in canary["predictor"]
    assert canary["predictor"]["minReplicas"] == 1


def test_promote_and_rollback_patches() -> None:
    knative = recorded("knative-canary-10")
    assert patches.promote_patch(knative, {})["spec"] == {
        "predictor": {"canaryTrafficPercent": None}
    }
    assert patches.rollback_patch(knative, {})["spec"] == {"predictor": {"canaryTrafficPercent": 0}}
    standard = recorded("standard-canary-10")
    promoted = patches.promote_patch(standard, {})
    assert promoted["spec"]["canary"] is None
    assert promoted["spec"]["predictor"]["name"] == "taxi-1-1-0"
    assert promoted["spec"]["predictor"]["containers"][0]["env"][0]["value"].endswith("1.1.0/")
    assert patches.rollback_patch(standard, {})["spec"] == {"canary": None}


def test_starting_twice_is_refused() -> None:
    with pytest.raises(CanaryImpossibleError, match="already in progress"):
        patches.start_patch(
            recorded("knative-canary-10"),
            model_uri="gs://x/",
            sha256=None,
            percent=5,
            version=None,
            annotations={},
        )


@pytest.mark.parametrize(
    ("uri", "version"),
    [
        ("gs://models/registry/taxi/1.1.0/", "1.1.0"),
        ("gs://models/registry/taxi/1.1.0/#1763784000123456", "1.1.0"),
        ("file:///opt/model/taxi/2.0.0", "2.0.0"),
        ("gs://models/taxi/model.joblib", None),
        (None, None),
    ],
)
def test_version_from_uri(uri: str | None, version: str | None) -> None:
    assert version_from_uri(uri) == version


CONFIG = AnalysisConfig(
    prometheus="http://x", min_requests=100, max_error_rate=0.01, max_p99_ratio=2.0, max_psi=0.2
)


def snap(
    version: str, requests: float, errors: float = 0, p99: float | None = 0.01, **classes: float
) -> Snapshot:
    return Snapshot(
        version, requests, errors, p99, classes or {"a": requests / 2, "b": requests / 2}
    )


def test_too_few_requests_is_inconclusive_not_a_failure() -> None:
    decision = decide(snap("1", 1000), snap("2", 20, errors=20), CONFIG)
    assert decision.verdict == INCONCLUSIVE
    assert decision.reasons == (
        "too few requests to judge (stable 1000, canary 20; need 100 each)",
    )


def test_a_healthy_canary_passes_with_its_numbers() -> None:
    decision = decide(snap("1.0.0", 1000), snap("1.1.0", 200), CONFIG)
    assert decision.verdict == PASS
    assert decision.describe().startswith(
        "PASS: stable 1.0.0: 1000 requests, error rate 0.0000, p99 10.0ms"
    )


def test_errors_latency_and_drift_each_fail_with_a_reason() -> None:
    decision = decide(snap("1", 1000), snap("2", 200, errors=10, p99=0.05, a=190, b=10), CONFIG)
    assert decision.verdict == FAIL
    assert decision.reasons[0] == "canary error rate 0.0500 > 0.01"
    assert decision.reasons[1] == "p99 5.00x the stable's > 2.0x"
    assert decision.reasons[2].startswith("prediction distribution shifted: PSI ")


def test_psi_is_zero_for_equal_distributions_and_grows_with_shift() -> None:
    assert population_stability_index({"a": 50, "b": 50}, {"a": 5, "b": 5}) == pytest.approx(0.0)
    small = population_stability_index({"a": 50, "b": 50}, {"a": 55, "b": 45})
    large = population_stability_index({"a": 50, "b": 50}, {"a": 95, "b": 5})
    assert 0 < small < 0.05 < 0.2 < large


class FakeProm:
    def __init__(self, answers: dict[str, list[tuple[dict[str, str], float]]]) -> None:
        self.answers = answers
        self.queries: list[str] = []

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        self.queries.append(promql)
        for fragment, rows in self.answers.items():
            if fragment in promql:
                return rows
        return []


def test_snapshot_queries_by_model_and_version() -> None:
    prom = FakeProm(
        {
            'status=~"5..': [({}, 2.0)],
            "sum(increase(predictor_requests_total": [({}, 100.0)],
            "histogram_quantile": [({}, 0.02)],
            "sum by (class)": [({"class": "long"}, 60.0), ({"class": "short"}, 40.0)],
        }
    )
    shot = snapshot(prom, model="taxi", version="1.1.0", window="2m")
    assert (shot.requests, shot.errors, shot.p99_seconds) == (100.0, 2.0, 0.02)
    assert shot.distribution == {"long": 60.0, "short": 40.0}
    assert all('model="taxi",version="1.1.0"' in q for q in prom.queries)
    assert all("[2m]" in q for q in prom.queries)


def test_analysis_file_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "analysis.yaml"
    path.write_text("prometheus: http://127.0.0.1:9090\nmax_psi: 0.1\nmin_requests: 10\n")
    config = AnalysisConfig.load(path)
    assert (config.max_psi, config.min_requests) == (0.1, 10)
    path.write_text("prometheus: http://x\nmax_pis: 0.1\n")
    with pytest.raises(RolloutError, match="max_pis: unknown key"):
        AnalysisConfig.load(path)
    # A quoted number is a string, not a threshold: refused at load, naming key and type.
    path.write_text('prometheus: http://x\nmax_psi: "0.2"\nmin_requests: ten\n')
    with pytest.raises(RolloutError) as refused:
        AnalysisConfig.load(path)
    assert str(refused.value).endswith(
        "analysis.yaml: min_requests: input should be a valid integer; "
        "max_psi: input should be a valid number"
    )
    assert refused.value.exit_code == 2
    assert parse_duration("2m") == 120 and parse_duration("500ms") == 0.5
    with pytest.raises(RolloutError, match="expected a duration"):
        parse_duration("soon")


def test_read_only_commands_take_no_dry_run_or_actor_and_every_argument_has_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse

    from predictor.rollout.cli import build_parser

    parser = build_parser()
    for argv in (["status", "taxi", "--dry-run"], ["url", "taxi", "--actor", "me"]):
        with pytest.raises(SystemExit) as refused:
            parser.parse_args(argv)
        assert refused.value.code == 2
        assert "unrecognized arguments" in capsys.readouterr().err
    assert parser.parse_args(["start", "taxi", "--model-uri", "gs://b/m/", "--percent", "5",
                              "--dry-run"]).dry_run is True  # fmt: skip

    def commands(p: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
        found = [p]
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    found.extend(commands(child))
        return found

    silent = [
        f"{command.prog}: {action.dest}"
        for command in commands(parser)
        for action in command._actions
        if not isinstance(action, argparse._SubParsersAction | argparse._HelpAction)
        and not action.help
    ]
    assert silent == []
