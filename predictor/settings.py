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
from dataclasses import fields
from typing import Any, TypeVar

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from predictor.fields import (
    BanditFields,
    DriftFields,
    ExperimentFields,
    ExplainFields,
    ModelFields,
    RepositoryFields,
    ServingFields,
    ShadowFields,
)
from predictor.sections import (
    Bandit,
    Drift,
    Engines,
    Explain,
    Limits,
    ModelSource,
    Repository,
    Shadow,
)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
S = TypeVar("S")


class Settings(  # the fields, in groups, are in predictor.fields
    BaseSettings,
    DriftFields,
    RepositoryFields,
    ExplainFields,
    ExperimentFields,
    BanditFields,
    ShadowFields,
    ServingFields,
    ModelFields,
):
    """The predictor's own settings; each field is also ``PREDICTOR_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="PREDICTOR_", extra="ignore", frozen=True, use_attribute_docstrings=True
    )

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
        if self.model_repository is not None:
            return self._check_repository()
        if self.model_uri is None and self.model_dir is None and not self.bandit_uris:
            raise ValueError("model_uri, model_dir or model_repository: required, missing")
        arms = "experiment_model_uris" if self.experiment_model_uris else "bandit_model_uris"
        if self.experiment_model_uris and self.bandit_model_uris:
            raise ValueError("bandit_model_uris and experiment_model_uris: set one, not both")
        if len(self.bandit_uris) == 1:
            raise ValueError(f"{arms}: arms need two URIs or more")
        pins = self.bandit_pins
        if pins and len(pins) != len(self.bandit_uris):
            raise ValueError(
                f"{arms.replace('_uris', '_sha256s')}: expected one digest per arm "
                f"({len(self.bandit_uris)}), got {len(pins)}"
            )
        self._check_experiment()
        if self.shadow_model_uri is not None and self.shadow_url is not None:
            raise ValueError("shadow_model_uri and shadow_url: set one, not both")
        return self

    def _check_experiment(self) -> None:
        weights = self.weights
        if self.experiment_model_uris and len(weights) != len(self.bandit_uris):
            raise ValueError(
                f"experiment_weights: expected one weight per arm ({len(self.bandit_uris)}), "
                f"got {len(weights)}"
            )
        if self.experiment_model_uris and not any(weights):
            raise ValueError("experiment_weights: at least one weight must be above 0")
        if self.experiment_weights and not self.experiment_model_uris:
            raise ValueError("experiment_weights: weights are for experiment_model_uris")
        if self.sticky_header and not self.experiment_model_uris:
            raise ValueError(
                "sticky_header: keeps callers on an experiment's arm; set experiment_model_uris "
                "(a learning bandit's shares change, so its arms cannot be sticky)"
            )

    def _check_repository(self) -> Settings:
        """The model repository serves each model alone: no other model source, no strategy."""
        alone = ("model_uri", "model_sha256", "bandit_model_uris", "experiment_model_uris",
                 "shadow_model_uri", "shadow_url")  # fmt: skip
        for name in alone:
            if getattr(self, name) is not None:
                raise ValueError(
                    f"model_repository and {name}: set one, not both (a repository serves each "
                    "model alone, without a shadow or bandit; pin models with bundles)"
                )
        if self.require_digest:
            raise ValueError(
                "require_digest: a model repository has no per-model pin to require; its bundles' "
                "manifests pin each artifact (turn require_digest off to serve a repository)"
            )
        preload = self.repository.preload
        if self.max_loaded_models is not None and len(preload) > self.max_loaded_models:
            raise ValueError(
                f"preload: names {len(preload)} models, more than max_loaded_models "
                f"({self.max_loaded_models})"
            )
        return self

    def for_model(self, uri: str) -> Settings:
        """The settings that load one model of the repository, from ``uri``."""
        download = (
            self.download_dir / uri.rstrip("/").rsplit("/", 1)[-1] if self.download_dir else None
        )
        return self.model_copy(
            update={
                "model_uri": uri,
                "model_dir": None,
                "model_repository": None,
                "download_dir": download,
            }
        )

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

    def _section(self, section: type[S], prefix: str = "", **named: str) -> S:
        """``section`` from the fields of its names (``prefix`` first where one exists)."""
        values = {}
        for f in fields(section):  # type: ignore[arg-type]
            name = named.get(f.name) or prefix + f.name
            values[f.name] = getattr(self, name if hasattr(self, name) else f.name)
        return section(**values)

    @property
    def source(self) -> ModelSource:
        """Where the model comes from and how far it is trusted."""
        return self._section(
            ModelSource,
            location="model_location",
            sha256="model_sha256",
            deadline_seconds="store_deadline_seconds",
        )

    @property
    def engines(self) -> Engines:
        """Which engines may answer for the model."""
        return self._section(Engines)

    @property
    def limits(self) -> Limits:
        """How much the server takes in, and how it batches and caches."""
        return self._section(Limits)

    @property
    def shadow(self) -> Shadow:
        """The shadow beside the model, and the prediction log."""
        return self._section(
            Shadow,
            "shadow_",
            log_max_bytes="prediction_log_max_bytes",
            log_max_seconds="prediction_log_max_seconds",
            log_spool_mb="prediction_log_spool_mb",
            deadline_seconds="store_deadline_seconds",
        )

    @property
    def bandit(self) -> Bandit:
        """The bandit's arms, policy and state."""
        return Bandit(
            uris=tuple(self.bandit_uris),
            policy="fixed" if self.experiment_model_uris else self.bandit_policy,
            weights=tuple(self.weights),
            sticky_header=self.sticky_header.lower() if self.sticky_header else None,
            epsilon=self.bandit_epsilon,
            state=self.bandit_state,
            feedback_ttl_seconds=self.bandit_feedback_ttl_seconds,
        )

    @property
    def explain(self) -> Explain:
        """How explanations are bounded."""
        return self._section(Explain, "explain_")

    @property
    def drift(self) -> Drift:
        """Live drift's window and sampling."""
        return self._section(Drift, "drift_")

    @property
    def repository(self) -> Repository:
        """The model repository, its budget and how it loads."""
        return self._section(Repository, preload_names="preload")

    @property
    def model_location(self) -> str:
        """The URI to load: ``model_uri``, else the ``model_dir`` folder."""
        return self.model_uri if self.model_uri is not None else str(self.model_dir)

    @property
    def bandit_uris(self) -> list[str]:
        """The arms of the bandit or experiment, in order (empty: neither)."""
        listed = self.experiment_model_uris or self.bandit_model_uris or ""
        return [u.strip() for u in listed.split(",") if u.strip()]

    @property
    def bandit_pins(self) -> list[str]:
        """The arms' digests, in order (empty: the arms are not pinned)."""
        listed = self.experiment_model_sha256s or self.bandit_model_sha256s
        return listed.split(",") if listed else []

    @property
    def weights(self) -> list[int]:
        """The experiment's weights, in the arms' order (empty: no experiment)."""
        return [int(w) for w in (self.experiment_weights or "").split(",") if w.strip()]

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
                "experiment_model_uris": None,
                "experiment_weights": None,
                "sticky_header": None,
            }
        )

    @field_validator("model_sha256", "shadow_model_sha256")
    @classmethod
    def _check_sha256(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return _sha256(value)

    @field_validator("bandit_model_sha256s", "experiment_model_sha256s")
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
