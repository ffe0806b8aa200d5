"""Finding and replacing a predictor's model in every style, and telling versions from metrics."""

from __future__ import annotations

import pytest

from predictor.rollout.errors import CanaryImpossibleError
from predictor.rollout.model_ref import ModelRef, find, with_model
from predictor.rollout.versions import resolve

OLD, NEW = "gs://m/registry/taxi/1.0.0/", "gs://m/registry/taxi/1.1.0/"
SHA_OLD, SHA_NEW = "a" * 64, "b" * 64


def container(*env: tuple[str, str]) -> dict[str, object]:
    return {
        "containers": [
            {"name": "kserve-container", "env": [{"name": k, "value": v} for k, v in env]}
        ]
    }


def test_a_storage_uri_predictor_is_changed_in_model_with_its_pin() -> None:
    predictor = {
        "model": {
            "modelFormat": {"name": "sklearn"},
            "storageUri": OLD,
            "env": [{"name": "PREDICTOR_MODEL_SHA256", "value": SHA_OLD}],
        }
    }
    assert find(predictor) == ModelRef("model.storageUri", OLD, SHA_OLD)
    assert with_model(predictor, NEW, SHA_NEW) == {
        "model": {
            "modelFormat": {"name": "sklearn"},
            "storageUri": NEW,
            "env": [{"name": "PREDICTOR_MODEL_SHA256", "value": SHA_NEW}],
        }
    }
    with pytest.raises(CanaryImpossibleError, match="pass --model-sha256"):
        with_model(predictor, NEW, None)


@pytest.mark.parametrize("name", ["STORAGE_URI", "PREDICTOR_MODEL_URI"])
def test_a_container_reference_is_replaced_in_place(name: str) -> None:
    predictor = container((name, OLD), ("PREDICTOR_MAX_IN_FLIGHT", "256"))
    assert find(predictor) == ModelRef(f"env {name}", OLD, None)
    (changed,) = with_model(predictor, NEW, None)["containers"]
    assert changed["env"] == [
        {"name": name, "value": NEW},
        {"name": "PREDICTOR_MAX_IN_FLIGHT", "value": "256"},
    ]


def test_versions_come_from_the_pods_by_pinned_digest_then_by_elimination() -> None:
    served = {SHA_OLD: "1.0.0", SHA_NEW: "1.1.0"}
    stable = ModelRef("annotation", "gs://m/served/stable/", SHA_OLD)
    canary = ModelRef("env PREDICTOR_MODEL_URI", "gs://m/served/candidate/", SHA_NEW)
    assert resolve(stable, canary, served) == ("1.0.0", "1.1.0")
    unpinned = ModelRef("env PREDICTOR_MODEL_URI", "gs://m/served/candidate/", None)
    assert resolve(stable, unpinned, served) == ("1.0.0", "1.1.0")  # the other one served
    assert resolve(stable, unpinned, {**served, "c" * 64: "2.0.0"}) == ("1.0.0", None)
    assert resolve(
        ModelRef("env PREDICTOR_MODEL_URI", OLD, None),
        ModelRef("env PREDICTOR_MODEL_URI", NEW, None),
        {},
    ) == ("1.0.0", "1.1.0")  # nothing reported yet: the URIs, as a last resort
    bare = ModelRef("model.storageUri", "gs://m/models/model.joblib", SHA_NEW)
    assert resolve(stable, bare, {}) == (None, SHA_NEW[:12])


def test_a_runtime_model_named_in_its_env_is_changed_there() -> None:
    predictor = {
        "model": {
            "runtime": "kserve-sklearn-predictor",
            "env": [
                {"name": "PREDICTOR_MODEL_URI", "value": "file:///opt/model/taxi/1.0.0/"},
                {"name": "PREDICTOR_SHUTDOWN_DELAY_SECONDS", "value": "5"},
            ],
        }
    }
    assert find(predictor) == ModelRef(
        "model.env PREDICTOR_MODEL_URI", "file:///opt/model/taxi/1.0.0/", None
    )
    assert with_model(predictor, "file:///opt/model/taxi/1.1.0/", None)["model"]["env"] == [
        {"name": "PREDICTOR_MODEL_URI", "value": "file:///opt/model/taxi/1.1.0/"},
        {"name": "PREDICTOR_SHUTDOWN_DELAY_SECONDS", "value": "5"},
    ]
