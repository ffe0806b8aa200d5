"""Canary analysis: compare canary with stable over a window, from the predictor's own metrics.

The analysis file (YAML) names Prometheus and the thresholds. For each version the queries read
request and error counts, p99 latency and the prediction distribution (per predicted class, or
the regression value histogram); the decision is pure: ``pass``, ``fail`` (with every breached
threshold) or ``inconclusive`` (too few requests to judge: hold, never promote blind, never roll
back for lack of data).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from predictor.rollout.errors import RolloutError
from predictor.statuses import SERVER_FAILURES
from predictor.validation import describe_errors

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
ERROR_STATUS = SERVER_FAILURES
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``2m``, ``1h`` or ``500ms``."""
    match = _DURATION.match(str(text).strip())
    if not match:
        raise RolloutError(f"expected a duration like 30s, 2m or 1h, got {text!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    return float(match.group(1)) * scale


class AnalysisConfig(BaseModel):
    """Thresholds and where to read metrics; every threshold is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    prometheus: str
    model: str | None = None
    stable_version: str | None = None
    canary_version: str | None = None
    window: str | None = None
    min_requests: int = Field(default=50, ge=0)
    max_inconclusive: int = Field(default=3, ge=0)
    max_error_rate: float | None = Field(default=0.01, ge=0)
    max_error_rate_increase: float | None = Field(default=None, ge=0)
    max_p99_seconds: float | None = Field(default=None, gt=0)
    max_p99_ratio: float | None = Field(default=2.0, gt=0)
    max_psi: float | None = Field(default=0.2, ge=0)
    max_disagreement: float | None = Field(default=None, ge=0, le=1)
    """Largest share of the canary's rows mirrored to the stable model (``start
    --mirror-to-stable``) on which the two answer differently; None: not judged."""
    min_agreement_rows: int = Field(default=100, ge=1)
    """Mirrored rows needed before the disagreement is judged (fewer: inconclusive)."""

    @classmethod
    def load(cls, path: Path) -> AnalysisConfig:
        """Read and check an analysis file.

        Raises:
            RolloutError: unreadable file, unknown keys or values of the wrong type.
        """
        try:
            document = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise RolloutError(f"cannot read analysis file {path}: {e}") from e
        if not isinstance(document, dict):
            raise RolloutError(f"{path}: expected a mapping with at least 'prometheus: <url>'")
        try:
            config = cls.model_validate(document)
        except ValidationError as e:
            raise RolloutError(f"{path}: {describe_errors(e)}") from e
        if config.window is not None:
            parse_duration(config.window)
        return config


@dataclass(frozen=True)
class Snapshot:
    """What one model version did during the window."""

    version: str
    requests: float
    errors: float
    p99_seconds: float | None
    distribution: dict[str, float] = field(default_factory=dict)
    agreement: dict[str, float] = field(default_factory=dict)
    """Rows this version answered and another version answered too (mirrored to it), by
    ``agree`` / ``disagree``: the canary's, compared with the stable model."""

    @property
    def error_rate(self) -> float:
        """Errors per request (0 with no requests)."""
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Decision:
    """The verdict of one analysis run and the numbers behind it."""

    verdict: str
    reasons: tuple[str, ...]
    stable: Snapshot
    canary: Snapshot
    psi: float | None

    def describe(self) -> str:
        """One paragraph: verdict, the numbers for both versions, and why."""

        def line(s: Snapshot) -> str:
            p99 = "n/a" if s.p99_seconds is None else f"{s.p99_seconds * 1000:.1f}ms"
            return (
                f"{s.version}: {s.requests:.0f} requests, error rate {s.error_rate:.4f}, p99 {p99}"
            )

        psi = "n/a" if self.psi is None else f"{self.psi:.4f}"
        mirrored = sum(self.canary.agreement.values())
        agreement = (
            f"; agreement {self.canary.agreement.get('agree', 0.0) / mirrored:.4f} over "
            f"{mirrored:.0f} mirrored rows"
            if mirrored
            else ""
        )
        return (
            f"{self.verdict.upper()}: stable {line(self.stable)}; canary {line(self.canary)}; "
            f"prediction PSI {psi}{agreement}"
            + (f"; {'; '.join(self.reasons)}" if self.reasons else "")
        )


class MetricSource(Protocol):
    """Runs an instant PromQL query; returns (labels, value) per series."""

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """Run ``promql`` as an instant query."""
        ...


def snapshot(
    source: MetricSource,
    *,
    model: str,
    version: str,
    window: str,
    compared_with: str | None = None,
) -> Snapshot:
    """Read one version's numbers over ``window`` from the predictor's metrics.

    ``compared_with``: the version its mirrored rows were answered by too (the stable's, for a
    canary mirrored to it); their agreement is read as well.
    """
    sel = f'model="{model}",version="{version}"'
    requests = _scalar(source.query(f"sum(increase(predictor_requests_total{{{sel}}}[{window}]))"))
    errors = _scalar(
        source.query(
            f'sum(increase(predictor_requests_total{{{sel},status=~"{ERROR_STATUS}"}}[{window}]))'
        )
    )
    p99_rows = source.query(
        "histogram_quantile(0.99, sum by (le) "
        f"(rate(predictor_request_duration_seconds_bucket{{{sel}}}[{window}])))"
    )
    p99 = _scalar(p99_rows) if p99_rows else None
    if p99 is not None and math.isnan(p99):
        p99 = None
    classes = source.query(
        f"sum by (class) (increase(predictor_predictions_total{{{sel}}}[{window}]))"
    )
    distribution = {labels.get("class", ""): value for labels, value in classes}
    if set(distribution) <= {""}:  # a regressor: use the value histogram's buckets instead
        buckets = source.query(
            f"sum by (le) (increase(predictor_prediction_value_bucket{{{sel}}}[{window}]))"
        )
        distribution = _bucket_counts(buckets)
    agreement = {}
    if compared_with is not None:
        rows = source.query(
            "sum by (agreement) (increase(predictor_shadow_predictions_total"
            f'{{{sel},shadow_version="{compared_with}"}}[{window}]))'
        )
        agreement = {labels.get("agreement", ""): value for labels, value in rows}
    return Snapshot(version, requests, errors, p99, distribution, agreement)


def population_stability_index(
    expected: dict[str, float], actual: dict[str, float], eps: float = 1e-4
) -> float:
    """PSI of ``actual`` against ``expected`` over the union of their categories."""
    keys = sorted(set(expected) | set(actual))
    e_total, a_total = sum(expected.values()), sum(actual.values())
    if not keys or e_total <= 0 or a_total <= 0:
        return 0.0
    psi = 0.0
    for key in keys:
        e = max(expected.get(key, 0.0) / e_total, eps)
        a = max(actual.get(key, 0.0) / a_total, eps)
        psi += (a - e) * math.log(a / e)
    return psi


def decide(stable: Snapshot, canary: Snapshot, config: AnalysisConfig) -> Decision:
    """Judge the canary against the stable version and the thresholds."""
    if canary.requests < config.min_requests or stable.requests < config.min_requests:
        reason = (
            f"too few requests to judge (stable {stable.requests:.0f}, "
            f"canary {canary.requests:.0f}; need {config.min_requests} each)"
        )
        return Decision(INCONCLUSIVE, (reason,), stable, canary, None)
    reasons = []
    if config.max_error_rate is not None and canary.error_rate > config.max_error_rate:
        reasons.append(f"canary error rate {canary.error_rate:.4f} > {config.max_error_rate}")
    increase = canary.error_rate - stable.error_rate
    if config.max_error_rate_increase is not None and increase > config.max_error_rate_increase:
        reasons.append(f"error rate up {increase:.4f} > {config.max_error_rate_increase}")
    if canary.p99_seconds is not None:
        if config.max_p99_seconds is not None and canary.p99_seconds > config.max_p99_seconds:
            reasons.append(f"canary p99 {canary.p99_seconds:.4f}s > {config.max_p99_seconds}s")
        if config.max_p99_ratio is not None and stable.p99_seconds:
            ratio = canary.p99_seconds / stable.p99_seconds
            if ratio > config.max_p99_ratio:
                reasons.append(f"p99 {ratio:.2f}x the stable's > {config.max_p99_ratio}x")
    psi = population_stability_index(stable.distribution, canary.distribution)
    if config.max_psi is not None and psi > config.max_psi:
        reasons.append(f"prediction distribution shifted: PSI {psi:.4f} > {config.max_psi}")
    if config.max_disagreement is not None:
        disagree = canary.agreement.get("disagree", 0.0)
        rows = disagree + canary.agreement.get("agree", 0.0)
        if rows < config.min_agreement_rows and not reasons:
            reason = (
                f"too few rows mirrored to the stable model to judge agreement ({rows:.0f}; "
                f"need {config.min_agreement_rows})"
            )
            return Decision(INCONCLUSIVE, (reason,), stable, canary, psi)
        if rows >= config.min_agreement_rows and disagree / rows > config.max_disagreement:
            reasons.append(
                f"canary disagrees with the stable model on {disagree / rows:.4f} of "
                f"{rows:.0f} mirrored rows > {config.max_disagreement}"
            )
    return Decision(FAIL if reasons else PASS, tuple(reasons), stable, canary, psi)


def _scalar(rows: list[tuple[dict[str, str], float]]) -> float:
    return float(rows[0][1]) if rows else 0.0


def _bucket_counts(rows: list[tuple[dict[str, str], float]]) -> dict[str, float]:
    """Per-bucket counts from cumulative ``le`` buckets."""
    ordered = sorted(
        ((float(labels.get("le", "inf")), value) for labels, value in rows), key=lambda r: r[0]
    )
    counts, previous = {}, 0.0
    for bound, cumulative in ordered:
        counts[f"le {bound:g}"] = max(cumulative - previous, 0.0)
        previous = cumulative
    return counts
