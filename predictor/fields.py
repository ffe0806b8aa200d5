"""The flat fields of ``Settings``, in groups: each is ``PREDICTOR_<FIELD>`` and ``--<field>``.

``predictor.settings`` builds ``Settings`` from these groups; ``predictor.sections`` holds the
frozen sections each layer is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Fields(BaseModel):
    """A group of ``Settings`` fields (each is ``PREDICTOR_<FIELD>`` and ``--<field>``)."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)


class ModelFields(_Fields):
    """Where the model comes from, and how far it is trusted."""

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

    allow_pickle: bool = True
    """Serve pickle and joblib files (loading one runs code); false serves only skops files,
    and no bundle that ships Python modules."""


class ServingFields(_Fields):
    """How requests are taken in, batched, answered and logged."""

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

    shutdown_quiet_seconds: float = Field(default=0.5, gt=0)
    """On SIGTERM, after the delay, keep serving until no connection or request has come for
    this long: requests sent before the signal are answered, not dropped (at most 30 s more)."""

    access_log: bool = False
    """Log one line per request (uvicorn's access log); off so that serving stays lean."""

    docs_url: str | None = Field(default=None, min_length=1)
    """Where the project's documentation is served (``make docs`` builds it): the home page
    links to it when set."""


class ShadowFields(_Fields):
    """The settings of the shadow and the prediction log."""

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

    prediction_log_spool_mb: float = Field(default=512.0, gt=0)
    """For a bucket: closed files wait on local disk for their upload (retried while the store
    is down) up to this size; past it the oldest are dropped, and their records counted."""


class BanditFields(_Fields):
    """The settings of a multi-armed bandit."""

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


class ExperimentFields(_Fields):
    """The settings of an A/B experiment: arms at fixed weights, callers kept on their arm."""

    experiment_model_uris: str | None = Field(default=None, min_length=1)
    """Comma-separated model URIs served together as the arms of an A/B experiment: each request
    is answered by one, at the fixed shares of experiment_weights (the bandit's router with a
    fixed policy; rewards go to POST .../feedback as for a bandit)."""

    experiment_model_sha256s: str | None = Field(default=None, min_length=1)
    """Comma-separated hex sha256 digests the arms' artifacts must match, one per URI of
    experiment_model_uris and in its order."""

    experiment_weights: str | None = Field(default=None, pattern=r"^\s*\d+(\s*,\s*\d+)*\s*$")
    """Comma-separated whole-number weights, one per arm, e.g. 90,10: each arm's share of the
    requests (and of the callers, with sticky_header)."""

    sticky_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]+$")
    """A request header (e.g. x-user-id; gRPC: the metadata key) whose value keeps a caller on one
    arm: the same value gives the same arm in every replica and after restarts, by hashing,
    with no shared state. Requests without it go by weight."""


class ExplainFields(_Fields):
    """The bounds of explanations."""

    explain_max_rows: int = Field(default=64, ge=1)
    """Rows one :explain request may hold (413 above)."""

    explain_max_in_flight: int = Field(default=2, ge=1)
    """Explanations computed at once, each in a worker thread of their own (503 above)."""

    explain_max_evals: int = Field(default=500, ge=1)
    """Model calls per row a sampling explainer may make (permutation SHAP)."""


class RepositoryFields(_Fields):
    """The settings of a model repository (many models per process)."""

    model_repository: str | None = Field(default=None, min_length=1)
    """A folder, file://, gs:// or s3:// prefix whose sub-folders are models, each served under
    its folder's name and loaded by its first request (many models per process; instead of
    model_uri). KServe's model agent fills /mnt/models this way."""

    preload: str | None = Field(default=None, min_length=1)
    """Comma-separated names of the repository's models loaded at start; readiness waits."""

    max_loaded_models: int | None = Field(default=None, ge=1)
    """Most models of the repository loaded at once; the least recently used idle model is
    unloaded to make room."""

    models_memory_mb: float | None = Field(default=None, gt=0)
    """Most memory the loaded models may take (each measured at load as its pickled state),
    unloading as max_loaded_models does."""

    load_failure_backoff_seconds: float = Field(default=30.0, ge=0)
    """How long a model whose load failed answers 503 with the reason before one is tried again."""

    model_loaders: int = Field(default=2, ge=1)
    """Models of the repository loaded at once (threads)."""

    max_pending_loads: int = Field(default=16, ge=1)
    """Loads under way or queued at most; a request that needs one more gets 503 (Retry-After)."""


class DriftFields(_Fields):
    """The settings of live drift."""

    drift_window_rows: int = Field(default=10_000, ge=0)
    """Rows of the sliding window drift is measured over, per model (0 switches drift off).
    Only a bundle published with a sample (publish --sample) carries the reference drift needs."""

    drift_sample_rate: float = Field(default=1.0, gt=0, le=1)
    """Share of answered requests drift looks at (when traffic outruns it, requests it cannot
    take are skipped and counted in predictor_drift_dropped_total)."""
