"""The shape of ``model.json``, as pydantic models: what a bundle manifest may hold.

Validation is strict (no coercion: a number in quotes is a string) and closed (an unknown key is
an error), and its problems read as ``key: expected ...`` (``predictor.validation``). The
manifest stays a plain JSON document for everything that reads it; this module only says
whether it is one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

TYPE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
"""A type's dotted name: ``module.Class``."""
SHA256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
METRIC = Literal[
    "accuracy",
    "balanced_accuracy",
    "f1",
    "precision",
    "recall",
    "roc_auc",
    "log_loss",
    "rmse",
    "mae",
    "r2",
]


def _timestamp(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or "T" not in value:
        raise ValueError("expected an ISO 8601 date-time with a time zone")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, regex_engine="python-re")


class Feature(_Strict):
    """One input feature and the datatype it travels as."""

    name: Annotated[str, StringConstraints(min_length=1)]
    dtype: Literal["FP64", "BYTES"]
    mean: float | None = None
    """A numeric feature's mean over ``publish --sample``: a linear model's explanations are
    measured from it."""


class Artifact(_Strict):
    """The model file inside the bundle, by relative path, and its digest.

    A ``.skops`` file lists the exact types it holds, the only ones it is loaded with.
    """

    path: Annotated[
        str, StringConstraints(pattern=r"^(?!.*\.\.)[^/\\][^\\]*\.(joblib|pkl|pickle|skops)$")
    ]
    sha256: SHA256
    trusted_types: list[Annotated[str, StringConstraints(pattern=TYPE_NAME)]] | None = None

    @model_validator(mode="after")
    def _types_for_skops(self) -> Artifact:
        skops = self.path.endswith(".skops")
        if skops and self.trusted_types is None:
            raise ValueError("a .skops artifact lists its trusted_types")
        if not skops and self.trusted_types is not None:
            raise ValueError("trusted_types are for a .skops artifact; a pickle trusts everything")
        return self


class NativeModel(_Strict):
    """The model converted for the native engine (ONNX), by relative path, and its digest."""

    path: Annotated[str, StringConstraints(pattern=r"^(?!.*\.\.)[^/\\][^\\]*\.onnx$")]
    sha256: SHA256
    converter: str = Field(description="The library and version that converted it.")


class ReferenceFile(_Strict):
    """The drift reference (``reference.json``: ``predictor.drift.reference``) and its digest."""

    path: Annotated[str, StringConstraints(pattern=r"^(?!.*\.\.)[^/\\][^\\]*\.json$")]
    sha256: SHA256


class TrainingData(_Strict):
    """Where the training data came from."""

    uri: str | None = None
    version: str | None = None


class Runtime(BaseModel):
    """Library versions the model was saved with (other libraries may be recorded too)."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True, populate_by_name=True)

    python: str
    scikit_learn: str = Field(alias="scikit-learn")
    joblib: str
    numpy: str


class CodeFile(_Strict):
    """A Python module the pickle needs, shipped in the bundle's ``code/`` folder."""

    path: Annotated[str, StringConstraints(pattern=r"^code/[A-Za-z_][A-Za-z0-9_]*\.py$")]
    sha256: SHA256


class EndToEnd(_Strict):
    """Rows and the answers the model must give for them."""

    path: str
    sha256: SHA256
    atol: float = Field(default=1e-6, ge=0)


class Confidence(_Strict):
    """A labelled set and the range a metric must fall in."""

    path: str
    sha256: SHA256
    metric: METRIC
    min: float | None = None
    max: float | None = None


class Acceptance(_Strict):
    """The acceptance sets the model must pass before it serves."""

    e2e: EndToEnd | None = None
    confidence: Confidence | None = None


class ManifestModel(_Strict):
    """A ``model.json`` document (schema version 1)."""

    schema_version: Literal[1]
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")]
    version: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,62}$")]
    created_at: Annotated[str, AfterValidator(_timestamp)]
    created_by: Annotated[str, StringConstraints(min_length=1)]
    task: Literal["classification", "regression", "clustering", "outlier_detection", "transform"]
    features: Annotated[list[Feature], Field(min_length=1)]
    classes: list[str | int | float | bool] | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    training_data: TrainingData = Field(default_factory=TrainingData)
    feature_extractor_version: str | None = None
    artifact: Artifact
    native: NativeModel | None = None
    reference: ReferenceFile | None = None
    runtime: Runtime
    metrics: dict[str, float] = Field(default_factory=dict)
    acceptance: Acceptance = Field(default_factory=Acceptance)
    code: list[CodeFile] = Field(default_factory=list)
