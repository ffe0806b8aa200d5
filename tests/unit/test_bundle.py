"""Bundle manifests and the acceptance gate as pure functions: schema, versions, metrics, rows."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from predictor.bundle.manifest import check_compatibility, check_manifest_matches, parse_manifest
from predictor.errors import IncompatibleModelError, ManifestError
from predictor.inference.signature import Signature
from predictor.loading.acceptance import check_confidence, check_e2e, metric_value

SHA = "ab" * 32
GOOD: dict[str, Any] = {
    "schema_version": 1,
    "name": "taxi",
    "version": "1.0.0",
    "created_at": "2026-11-22T04:00:00Z",
    "created_by": "alice",
    "task": "classification",
    "features": [{"name": "a", "dtype": "FP64"}, {"name": "b", "dtype": "FP64"}],
    "classes": ["no", "yes"],
    "artifact": {"path": "model.joblib", "sha256": SHA},
    "runtime": {"python": "3.11.7", "scikit-learn": "1.9.1", "joblib": "1.6.0", "numpy": "2.4.6"},
}
SIGNATURE = Signature(
    task="classification",
    n_features=2,
    feature_names=("a", "b"),
    feature_dtypes=("FP64", "FP64"),
    classes=("no", "yes"),
    label_datatype="BYTES",
    allow_nan=False,
)


def with_(path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = document
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return document


def test_a_good_manifest_parses() -> None:
    manifest = parse_manifest(GOOD)
    assert (manifest.name, manifest.version, manifest.artifact_sha256) == ("taxi", "1.0.0", SHA)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (with_("version", KeyError), "invalid: version: required, missing"),
        (
            with_("task", "ranking"),
            "invalid: task: input should be 'classification', 'regression'",
        ),
        (with_("artifact.sha256", "xyz"), "invalid: artifact.sha256: string should match pattern"),
        (
            with_("artifact.path", "../evil.joblib"),
            "invalid: artifact.path: string should match pattern",
        ),
        (
            with_("created_at", "yesterday"),
            "invalid: created_at: expected an ISO 8601 date-time with a time zone",
        ),
        (with_("features", []), "invalid: features: list should have at least 1 item"),
        (with_("surprise", 1), "invalid: surprise: unknown key"),
    ],
)
def test_invalid_manifests_name_the_field(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(document)
    assert message in str(caught.value)


def test_same_versions_are_compatible() -> None:
    assert check_compatibility(GOOD["runtime"], GOOD["runtime"], allow_skew=False) == []


def test_sklearn_minor_skew_is_refused_unless_allowed() -> None:
    running = dict(GOOD["runtime"], **{"scikit-learn": "1.8.0"})
    with pytest.raises(
        IncompatibleModelError, match=r"scikit-learn 1.9.1 \(saved\) vs 1.8.0 \(here\)"
    ):
        check_compatibility(GOOD["runtime"], running, allow_skew=False)
    assert check_compatibility(GOOD["runtime"], running, allow_skew=True) == [
        "scikit-learn 1.9.1 (saved) vs 1.8.0 (here)"
    ]


def test_patch_releases_and_python_minor_are_not_refused() -> None:
    running = dict(
        GOOD["runtime"], **{"scikit-learn": "1.9.3", "python": "3.12.1", "numpy": "2.0.0"}
    )
    assert check_compatibility(GOOD["runtime"], running, allow_skew=False) == [
        "python 3.11.7 (saved) vs 3.12.1 (here)"
    ]


def test_numpy_major_skew_is_refused() -> None:
    running = dict(GOOD["runtime"], numpy="1.26.4")
    with pytest.raises(IncompatibleModelError, match="numpy 2.4.6"):
        check_compatibility(GOOD["runtime"], running, allow_skew=False)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (with_("task", "regression"), "says task 'regression', the model is 'classification'"),
        (
            with_("features", [{"name": "b", "dtype": "FP64"}, {"name": "a", "dtype": "FP64"}]),
            "lists features ['b', 'a']",
        ),
        (
            with_("classes", ["yes", "no"]),
            "lists classes ['yes', 'no'], the model has ['no', 'yes']",
        ),
    ],
)
def test_manifest_must_describe_the_model(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_manifest_matches(parse_manifest(document), SIGNATURE)


def fake_infer(answers: dict[str, Any]) -> Any:
    def infer(body: dict[str, Any]) -> dict[str, Any]:
        outputs = body["parameters"]["outputs"]
        response = {name: answers[name] for name in outputs}
        response["predictions"] = response[outputs[0]]
        if "predict_proba" in outputs:
            response["classes"] = ["no", "yes"]
        return response

    return infer


def test_e2e_rows_that_differ_are_named() -> None:
    infer = fake_infer(
        {"predict": ["no", "yes", "yes"], "predict_proba": [[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]}
    )
    data = {
        "instances": [[0, 0], [1, 1], [2, 2]],
        "expected": {
            "predict": ["no", "yes", "no"],
            "predict_proba": [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]],
        },
    }
    result = check_e2e(data, infer, atol=1e-6)
    assert not result.passed
    assert result.summary == "2/3 rows as expected (atol 1e-06)"
    assert result.failures == (
        "row 2: predict expected 'no', got 'yes'",
        "row 2: predict_proba differs by up to 0.1 (atol 1e-06)",
    )
    assert check_e2e(data, infer, atol=0.2).failures == ("row 2: predict expected 'no', got 'yes'",)


def test_confidence_metric_outside_its_range_fails_with_the_value() -> None:
    infer = fake_infer({"predict": ["no", "yes", "yes", "no"]})
    data = {"instances": [[0, 0]] * 4, "labels": ["no", "yes", "no", "no"]}
    result = check_confidence(data, infer, metric="accuracy", minimum=0.8, maximum=None)
    assert (result.passed, result.summary) == (False, "accuracy=0.75 over 4 rows, outside [0.8, ]")
    assert check_confidence(data, infer, metric="accuracy", minimum=0.7, maximum=None).passed


@pytest.mark.parametrize(
    ("metric", "labels", "predictions", "proba", "expected"),
    [
        ("rmse", [1.0, 2.0], [1.0, 4.0], None, 2**0.5),
        ("mae", [1.0, 2.0], [1.0, 4.0], None, 1.0),
        (
            "roc_auc",
            ["no", "yes", "yes"],
            ["no", "yes", "no"],
            [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]],
            1.0,
        ),
        ("f1", ["no", "yes"], ["no", "no"], None, 1 / 3),
    ],
)
def test_metric_values(
    metric: str, labels: list[Any], predictions: list[Any], proba: Any, expected: float
) -> None:
    assert metric_value(metric, labels, predictions, proba, ["no", "yes"]) == pytest.approx(
        expected
    )
