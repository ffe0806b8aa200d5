"""Settings for the predictor: read once at start-up, validated, then passed explicitly.

Server knobs (ports, workers, ``--model_name``) stay KServe's own CLI flags. The model knobs below
come from ``PREDICTOR_*`` environment variables (what a manifest sets) or from the matching
``--flag`` on the command line, which wins; the flags are made from this model
(``predictor.cli.flags``), so a new setting is one field here. Nothing below the CLI reads the
environment.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from predictor.sections import Bandit, Engines, Explain, Limits, ModelSource, Shadow

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Settings(BaseSettings):
    """The predictor's own settings; each field is also ``PREDICTOR_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="PREDICTOR_", extra="ignore", frozen=True, use_attribute_docstrings=True
    )

    model_uri: str | None = Field(default=None, min_length=1)
    """Where the model lives: gs:// or s3:// (object or prefix/), models:/NAME/VERSION or
    models:/NAME@ALIAS (MLflow), file:///abs/path or a path."""

    model_dir: Path | None = None
    """The folder KServe's storage initializer filled from storageUri (KServe's runtime flag,
    ``--model_dir=/mnt/models``); used when no model URI is given."""

    model_sha256: str | None = None
    """Hex sha256 the artifact must match before it is unpickled; unset means not pinned."""

    download_dir: Path | None = None
    """Where gs:// artifacts are downloaded; a fresh temporary folder when unset."""

    max_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    """Request bodies above this size get 413 without being read whole."""

    store_deadline_seconds: float = Field(default=120.0, gt=0)
    """Total time budget for retrying transient errors of a store (GCS, S3, MLflow) in one
    read or write."""

    gcs_deadline_seconds: float | None = Field(default=None, gt=0)
    """Deprecated: the old name of store_deadline_seconds, still accepted (with a warning)."""

    allow_version_skew: bool = False
    """Serve a bundle saved with a different scikit-learn minor version (results may differ)."""

    require_digest: bool = False
    """Refuse any model whose digest the deployer did not pin (production setting)."""

    fast_path: bool = True
    """Serve with a compiled model when one exists and matches scikit-learn on probe rows."""

    native_engine: bool = True
    """Serve tree ensembles with ONNX Runtime when the converted model matches scikit-learn."""

    native_threads: int = Field(default=1, ge=1)
    """ONNX Runtime threads per inference (1 leaves the other cores to concurrent requests)."""

    batch_max_rows: int | None = Field(default=None, ge=1)
    """Most rows one model call may combine from concurrent requests (1 switches batching off).

    Unset: 1,024 for tree ensembles (one call over many rows brings their nodes back into the
    CPU caches once, not once per request), 64 for other models.
    """

    batch_max_wait_ms: float = Field(default=0.0, ge=0)
    """How long a lone request may wait for company; 0 batches only what already queued."""

    cache_size: int = Field(default=0, ge=0)
    """Entries in the prediction cache (by model version and exact input); 0 switches it off."""

    max_in_flight: int = Field(default=256, ge=1)
    """Inference requests served at once per process; more get 503 with Retry-After at once."""

    shutdown_delay_seconds: float = Field(default=0.0, ge=0)
    """On SIGTERM, report not-ready and keep serving this long before stopping (set it to a few
    seconds in a cluster, below terminationGracePeriodSeconds, so no request is cut off)."""

    access_log: bool = False
    """Log one line per request (uvicorn's access log); off so that serving stays lean."""

    shadow_model_uri: str | None = Field(default=None, min_length=1)
    """A second model (same URIs as model_uri) that answers every request too, off the response
    path: its answers are only compared and logged; callers get the primary's."""

    shadow_model_sha256: str | None = None
    """Hex sha256 the shadow's artifact must match, as model_sha256 for the primary."""

    shadow_url: str | None = Field(default=None, min_length=1)
    """Instead of a shadow model: a v1 :predict URL each request is mirrored to (another image or
    feature extractor), fire and forget; its answers are compared as a shadow model's."""

    shadow_optional: bool = False
    """Serve with the primary alone when the shadow cannot be loaded (else start-up fails)."""

    shadow_sample_rate: float = Field(default=1.0, ge=0, le=1)
    """Share of requests the shadow also answers."""

    shadow_queue_size: int = Field(default=1024, ge=1)
    """Requests waiting for the shadow at most; more are dropped (and counted), never waited for."""

    shadow_tolerance: float = Field(default=1e-6, ge=0)
    """Largest difference at which two numeric answers (regression, transforms) still agree."""

    prediction_log: str | None = Field(default=None, min_length=1)
    """A folder, gs://bucket/prefix/ or s3://bucket/prefix/ for JSON Lines of each shadowed row:
    time, request id, model, versions and both outputs."""

    log_inputs: bool = False
    """Also write each row's input features in the prediction log."""

    prediction_log_max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    """A prediction log file is closed (and uploaded, to a bucket) at this size."""

    prediction_log_max_seconds: float = Field(default=300.0, gt=0)
    """... or this long after it was opened, whichever comes first."""

    bandit_model_uris: str | None = Field(default=None, min_length=1)
    """Comma-separated model URIs served together as arms of a multi-armed bandit: each request
    is answered by one, chosen by bandit_policy, which learns from POST .../feedback."""

    bandit_model_sha256s: str | None = Field(default=None, min_length=1)
    """Comma-separated hex sha256 digests the arms' artifacts must match, one per URI of
    bandit_model_uris and in its order, as model_sha256 for a single model."""

    bandit_policy: Literal["thompson", "epsilon_greedy", "ucb1"] = "thompson"
    """How the bandit picks the arm for a request."""

    bandit_epsilon: float = Field(default=0.1, ge=0, le=1)
    """epsilon_greedy: the share of requests sent to an arm at random."""

    bandit_state: str | None = Field(default=None, pattern=r"^rediss?://")
    """redis://host:port/db to share what the bandit learned between replicas and restarts;
    unset: this process alone."""

    bandit_feedback_ttl_seconds: float = Field(default=3600.0, gt=0)
    """How long a response id takes feedback."""

    explain_max_rows: int = Field(default=64, ge=1)
    """Rows one :explain request may hold (413 above)."""

    explain_max_in_flight: int = Field(default=2, ge=1)
    """Explanations computed at once, each in a worker thread of their own (503 above)."""

    explain_max_evals: int = Field(default=500, ge=1)
    """Model calls per row a sampling explainer may make (permutation SHAP)."""

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("gcs_deadline_seconds") is not None:
            warnings.warn(
                "PREDICTOR_GCS_DEADLINE_SECONDS (--gcs_deadline_seconds) is deprecated: use "
                "PREDICTOR_STORE_DEADLINE_SECONDS (--store_deadline_seconds); it governs every "
                "store, not GCS alone",
                FutureWarning,
                stacklevel=2,
            )
            data = dict(data)
            data.setdefault("store_deadline_seconds", data["gcs_deadline_seconds"])
            data["gcs_deadline_seconds"] = None
        return data

    @model_validator(mode="after")
    def _one_model(self) -> Settings:
        if self.model_uri is None and self.model_dir is None and not self.bandit_uris:
            raise ValueError("model_uri or model_dir: required, missing")
        if len(self.bandit_uris) == 1:
            raise ValueError("bandit_model_uris: a bandit needs two URIs or more")
        pins = self.bandit_pins
        if pins and len(pins) != len(self.bandit_uris):
            raise ValueError(
                f"bandit_model_sha256s: expected one digest per arm ({len(self.bandit_uris)}), "
                f"got {len(pins)}"
            )
        if self.shadow_model_uri is not None and self.shadow_url is not None:
            raise ValueError("shadow_model_uri and shadow_url: set one, not both")
        return self

    def for_shadow(self) -> Settings:
        """The settings that load the shadow model: its URI and pin, its own download folder."""
        download = self.download_dir / "shadow" if self.download_dir is not None else None
        return self.model_copy(
            update={
                "model_uri": self.shadow_model_uri,
                "model_dir": None,
                "model_sha256": self.shadow_model_sha256,
                "download_dir": download,
                "shadow_model_uri": None,
            }
        )

    @property
    def source(self) -> ModelSource:
        """Where the model comes from and how far it is trusted."""
        return ModelSource(
            location=self.model_location,
            sha256=self.model_sha256,
            download_dir=self.download_dir,
            deadline_seconds=self.store_deadline_seconds,
            allow_version_skew=self.allow_version_skew,
            require_digest=self.require_digest,
        )

    @property
    def engines(self) -> Engines:
        """Which engines may answer for the model."""
        return Engines(
            fast_path=self.fast_path,
            native_engine=self.native_engine,
            native_threads=self.native_threads,
        )

    @property
    def limits(self) -> Limits:
        """How much the server takes in, and how it batches and caches."""
        return Limits(
            max_body_bytes=self.max_body_bytes,
            batch_max_rows=self.batch_max_rows,
            batch_max_wait_ms=self.batch_max_wait_ms,
            cache_size=self.cache_size,
            max_in_flight=self.max_in_flight,
            shutdown_delay_seconds=self.shutdown_delay_seconds,
            access_log=self.access_log,
        )

    @property
    def shadow(self) -> Shadow:
        """The shadow beside the model, and the prediction log."""
        return Shadow(
            model_uri=self.shadow_model_uri,
            url=self.shadow_url,
            optional=self.shadow_optional,
            sample_rate=self.shadow_sample_rate,
            queue_size=self.shadow_queue_size,
            tolerance=self.shadow_tolerance,
            prediction_log=self.prediction_log,
            log_inputs=self.log_inputs,
            log_max_bytes=self.prediction_log_max_bytes,
            log_max_seconds=self.prediction_log_max_seconds,
            deadline_seconds=self.store_deadline_seconds,
        )

    @property
    def bandit(self) -> Bandit:
        """The bandit's arms, policy and state."""
        return Bandit(
            uris=tuple(self.bandit_uris),
            policy=self.bandit_policy,
            epsilon=self.bandit_epsilon,
            state=self.bandit_state,
            feedback_ttl_seconds=self.bandit_feedback_ttl_seconds,
        )

    @property
    def explain(self) -> Explain:
        """How explanations are bounded."""
        return Explain(self.explain_max_rows, self.explain_max_in_flight, self.explain_max_evals)

    @property
    def model_location(self) -> str:
        """The URI to load: ``model_uri``, else the ``model_dir`` folder."""
        return self.model_uri if self.model_uri is not None else str(self.model_dir)

    @property
    def bandit_uris(self) -> list[str]:
        """The bandit's arms, in order (empty: no bandit)."""
        return [u.strip() for u in (self.bandit_model_uris or "").split(",") if u.strip()]

    @property
    def bandit_pins(self) -> list[str]:
        """The arms' digests, in order (empty: the arms are not pinned)."""
        return self.bandit_model_sha256s.split(",") if self.bandit_model_sha256s else []

    def for_arm(self, index: int) -> Settings:
        """The settings that load bandit arm ``index``: its URI, its own download folder."""
        download = self.download_dir / f"arm-{index}" if self.download_dir is not None else None
        return self.model_copy(
            update={
                "model_uri": self.bandit_uris[index],
                "model_dir": None,
                "model_sha256": self.bandit_pins[index] if self.bandit_pins else None,
                "download_dir": download,
                "bandit_model_uris": None,
            }
        )

    @field_validator("model_sha256", "shadow_model_sha256")
    @classmethod
    def _check_sha256(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return _sha256(value)

    @field_validator("bandit_model_sha256s")
    @classmethod
    def _check_sha256s(cls, value: str | None) -> str | None:
        digests = [_sha256(d) for d in (value or "").split(",") if d.strip()]
        return ",".join(digests) or None


def _sha256(value: str) -> str:
    """``value`` as a bare lower-case hex digest (``sha256:`` prefix allowed).

    Raises:
        ValueError: it is not 64 hex characters.
    """
    value = value.strip().lower().removeprefix("sha256:")
    if not _SHA256.match(value):
        raise ValueError("expected 64 hex characters (a sha256 digest)")
    return value
