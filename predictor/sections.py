"""The frozen sections of ``Settings``, one per layer: each layer is given only its own.

``Settings.source``, ``.engines``, ``.limits``, ``.shadow``, ``.bandit``, ``.explain`` and
``.repository`` build
them from the flat ``PREDICTOR_*`` fields (``predictor.settings``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelSource:
    """Where the model comes from and how far it is trusted (``Settings.source``)."""

    location: str
    sha256: str | None
    download_dir: Path | None
    deadline_seconds: float
    allow_version_skew: bool
    require_digest: bool
    allow_pickle: bool


@dataclass(frozen=True)
class Engines:
    """Which engines may answer for the model (``Settings.engines``)."""

    fast_path: bool
    native_engine: bool
    native_threads: int


@dataclass(frozen=True)
class Limits:
    """What the server takes in, how it batches and caches (``Settings.limits``)."""

    max_body_bytes: int
    batch_max_rows: int | None
    batch_max_wait_ms: float
    cache_size: int
    max_in_flight: int
    shutdown_delay_seconds: float
    shutdown_quiet_seconds: float
    access_log: bool


@dataclass(frozen=True)
class Shadow:
    """The shadow and the prediction log (``Settings.shadow``)."""

    model_uri: str | None
    url: str | None
    optional: bool
    sample_rate: float
    queue_size: int
    tolerance: float
    prediction_log: str | None
    log_inputs: bool
    log_max_bytes: int
    log_max_seconds: float
    log_spool_mb: float
    deadline_seconds: float


@dataclass(frozen=True)
class Bandit:
    """The bandit's arms, policy and where its state lives (``Settings.bandit``)."""

    uris: tuple[str, ...]
    policy: str
    """A learning policy, or ``fixed``: an experiment's arms at fixed ``weights``."""
    weights: tuple[int, ...]
    sticky_header: str | None
    """The header (lower case) whose value keeps a caller on one arm; None: by weight."""
    epsilon: float
    state: str | None
    feedback_ttl_seconds: float


@dataclass(frozen=True)
class Explain:
    """How ``:explain`` is bounded (``Settings.explain``)."""

    max_rows: int
    max_in_flight: int
    max_evals: int


@dataclass(frozen=True)
class Drift:
    """Live drift against a bundle's reference (``Settings.drift``)."""

    window_rows: int
    sample_rate: float


@dataclass(frozen=True)
class Repository:
    """The model repository, its budget, and how it loads (``Settings.repository``)."""

    model_repository: str | None
    preload_names: str | None
    max_loaded_models: int | None
    models_memory_mb: float | None
    load_failure_backoff_seconds: float
    model_loaders: int
    max_pending_loads: int

    @property
    def preload(self) -> list[str]:
        """The models loaded at start, in order."""
        return [n.strip() for n in (self.preload_names or "").split(",") if n.strip()]
