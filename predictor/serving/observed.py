"""What the metrics say of the models a strategy serves: loaded, and their engine switched."""

from __future__ import annotations

from predictor.bundle.manifest import runtime_versions
from predictor.loading.loader import LoadedModel
from predictor.metrics.record import engine_switched, known_at_load, model_loaded


def loaded(name: str, model: LoadedModel) -> None:
    """``model`` serves as ``name``: its info series, load time, and its series at 0."""
    known_at_load(name, model.version, model.signature.classes)
    model_loaded(
        name,
        model.version,
        sha256=model.artifact.sha256,
        runtime=runtime_versions(),
        seconds=model.load_seconds,
        engine=model.engine.name,
    )


def switched(name: str, model: LoadedModel, before: str) -> None:
    """``model`` now answers with another engine: its info series follows."""
    engine_switched(
        name,
        model.version,
        sha256=model.artifact.sha256,
        runtime=runtime_versions(),
        before=before,
        after=model.engine.name,
    )
