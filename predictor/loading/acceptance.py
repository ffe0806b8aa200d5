"""The acceptance gate: a model's own tests, run through the serving path before it is ready.

Two kinds of set, both optional, both named (with their sha256) in the bundle's manifest:

- **end-to-end**: ``{"instances": [...], "expected": {"predict": [...], "predict_proba": ...}}``;
  labels must match exactly, probabilities and regression values within ``atol``.
- **confidence**: ``{"instances": [...], "labels": [...]}`` with a metric and its acceptable range.

The checks take an ``infer`` callable (a v1 body in, a v1 response out), which the model binds to
the code that answers requests, so what is accepted is exactly what will serve.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from predictor.bundle.manifest import Manifest, bundle_file
from predictor.errors import ManifestError, PayloadError
from predictor.inference.engine_choice import BundleChecks
from predictor.inference.engines import Engine
from predictor.inference.features import rows_to_features
from predictor.inference.signature import Signature
from predictor.protocol.v1 import answer_v1

Infer = Callable[[dict[str, Any]], dict[str, Any]]
PROBABILITY_METRICS = ("roc_auc", "log_loss")
DEFAULT_ATOL = 1e-6


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one acceptance check."""

    name: str
    passed: bool
    summary: str
    failures: tuple[str, ...] = ()


@dataclass(frozen=True)
class AcceptanceReport:
    """Every check run at load; a model serves only when all passed."""

    results: tuple[CheckResult, ...] = ()

    @property
    def passed(self) -> bool:
        """True when every check passed (or there were none)."""
        return all(r.passed for r in self.results)

    def describe(self) -> str:
        """One line per check, failures indented under it."""
        if not self.results:
            return "no acceptance checks in this bundle"
        lines = []
        for result in self.results:
            lines.append(
                f"{result.name}: {'passed' if result.passed else 'FAILED'}: {result.summary}"
            )
            lines.extend(f"  {failure}" for failure in result.failures)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, str]:
        """Check name to its one-line verdict, for metadata and the home page."""
        return {r.name: f"{'passed' if r.passed else 'failed'}: {r.summary}" for r in self.results}


@dataclass(frozen=True)
class AcceptanceSets:
    """The acceptance data of a bundle, read and digest-checked, ready to run."""

    e2e: dict[str, Any] | None = None
    e2e_atol: float = DEFAULT_ATOL
    confidence: dict[str, Any] | None = None
    metric: str | None = None
    minimum: float | None = None
    maximum: float | None = None


def read_acceptance_sets(root: Path, manifest: Manifest) -> AcceptanceSets:
    """Read the sets the manifest names, checking each file's sha256.

    Raises:
        ManifestError: a set is missing or malformed.
        DigestMismatchError: a set's sha256 differs from the manifest's.
    """
    section = manifest.acceptance
    e2e = confidence = None
    if "e2e" in section:
        e2e = _read_set(root, section["e2e"], "end-to-end set", required=("instances", "expected"))
    if "confidence" in section:
        confidence = _read_set(
            root, section["confidence"], "confidence set", required=("instances", "labels")
        )
    spec = section.get("confidence", {})
    return AcceptanceSets(
        e2e=e2e,
        e2e_atol=float(section.get("e2e", {}).get("atol", DEFAULT_ATOL)),
        confidence=confidence,
        metric=spec.get("metric"),
        minimum=spec.get("min"),
        maximum=spec.get("max"),
    )


def run_acceptance(sets: AcceptanceSets, infer: Infer) -> AcceptanceReport:
    """Run every set the bundle carries through ``infer``."""
    results = []
    if sets.e2e is not None:
        results.append(check_e2e(sets.e2e, infer, atol=sets.e2e_atol))
    if sets.confidence is not None and sets.metric is not None:
        results.append(
            check_confidence(
                sets.confidence,
                infer,
                metric=sets.metric,
                minimum=sets.minimum,
                maximum=sets.maximum,
            )
        )
    return AcceptanceReport(tuple(results))


def check_e2e(data: dict[str, Any], infer: Infer, *, atol: float) -> CheckResult:
    """Every row must come back as recorded: labels exactly, numbers within ``atol``."""
    expected: dict[str, Any] = data["expected"]
    outputs = [name for name in ("predict", "predict_proba") if name in expected]
    rows = data["instances"]
    try:
        answer = infer({"instances": rows, "parameters": {"outputs": outputs}})
    except PayloadError as e:
        return CheckResult("e2e", False, f"the {len(rows)} rows were refused: {e}")
    failures = []
    for name in outputs:
        failures.extend(_compare(name, expected[name], answer[name], atol))
    bad_rows = {f.split(":")[0] for f in failures}
    summary = f"{len(rows) - len(bad_rows)}/{len(rows)} rows as expected (atol {atol:g})"
    return CheckResult("e2e", not failures, summary, tuple(failures[:10]))


def check_confidence(
    data: dict[str, Any],
    infer: Infer,
    *,
    metric: str,
    minimum: float | None,
    maximum: float | None,
) -> CheckResult:
    """The metric over the labelled set must fall within ``[minimum, maximum]``."""
    rows, labels = data["instances"], data["labels"]
    outputs = ["predict", "predict_proba"] if metric in PROBABILITY_METRICS else ["predict"]
    try:
        answer = infer({"instances": rows, "parameters": {"outputs": outputs}})
    except PayloadError as e:
        return CheckResult("confidence", False, f"the {len(rows)} rows were refused: {e}")
    value = metric_value(
        metric, labels, answer["predict"], answer.get("predict_proba"), answer.get("classes")
    )
    low = -math.inf if minimum is None else minimum
    high = math.inf if maximum is None else maximum
    passed = low <= value <= high
    bounds = f"[{_bound(minimum)}, {_bound(maximum)}]"
    where = "within" if passed else "outside"
    summary = f"{metric}={value:.6g} over {len(rows)} rows, {where} {bounds}"
    return CheckResult("confidence", passed, summary)


def metric_value(
    metric: str,
    labels: list[Any],
    predictions: list[Any],
    probabilities: list[list[float]] | None,
    classes: list[Any] | None,
) -> float:
    """Compute one of the supported metrics (F1, precision and recall are macro-averaged)."""
    from sklearn import metrics as skm  # only bundles with a confidence set pay for this import

    if metric in PROBABILITY_METRICS:
        if probabilities is None or classes is None:
            raise ManifestError(f"metric {metric} needs a classifier with predict_proba")
        proba = np.asarray(probabilities)
        if metric == "log_loss":
            return float(skm.log_loss(labels, proba, labels=classes))
        if len(classes) == 2:
            return float(skm.roc_auc_score(np.asarray(labels) == classes[1], proba[:, 1]))
        return float(skm.roc_auc_score(labels, proba, multi_class="ovr", labels=classes))
    scorers: dict[str, Callable[[Any, Any], float]] = {
        "accuracy": skm.accuracy_score,
        "balanced_accuracy": skm.balanced_accuracy_score,
        "f1": lambda y, p: skm.f1_score(y, p, average="macro"),
        "precision": lambda y, p: skm.precision_score(y, p, average="macro", zero_division=0),
        "recall": lambda y, p: skm.recall_score(y, p, average="macro", zero_division=0),
        "rmse": lambda y, p: math.sqrt(skm.mean_squared_error(y, p)),
        "mae": skm.mean_absolute_error,
        "r2": skm.r2_score,
    }
    if metric not in scorers:
        raise ManifestError(f"unknown metric {metric!r}")
    return float(scorers[metric](labels, predictions))


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _compare(name: str, expected: list[Any], got: list[Any], atol: float) -> list[str]:
    if len(expected) != len(got):
        return [f"{name}: expected {len(expected)} rows, got {len(got)}"]
    failures = []
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        if isinstance(want, list):
            gap = float(
                np.max(np.abs(np.asarray(want, dtype=float) - np.asarray(have, dtype=float)))
            )
            if not gap <= atol:
                failures.append(f"row {i}: {name} differs by up to {gap:.3g} (atol {atol:g})")
        elif isinstance(want, float) and isinstance(have, float):
            if not abs(want - have) <= atol:
                failures.append(f"row {i}: {name} expected {want!r}, got {have!r} (atol {atol:g})")
        elif want != have:
            failures.append(f"row {i}: {name} expected {want!r}, got {have!r}")
    return failures


def _read_set(
    root: Path, spec: dict[str, Any], what: str, *, required: tuple[str, ...]
) -> dict[str, Any]:
    path = bundle_file(root, spec["path"], spec["sha256"], what)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"{what} {spec['path']} is not valid JSON: {e}") from e
    if not isinstance(data, dict) or any(key not in data for key in required):
        raise ManifestError(f"{what} {spec['path']} must be an object with {', '.join(required)}")
    if not isinstance(data["instances"], list) or not data["instances"]:
        raise ManifestError(f"{what} {spec['path']}: 'instances' must be a non-empty list")
    return data


def bundle_checks(sets: AcceptanceSets, signature: Signature) -> BundleChecks:
    """What the sets add to the choice of engine: their rows as probes, their e2e check."""
    rows: list[Any] = []
    for data in (sets.e2e, sets.confidence):
        if data is not None:
            try:
                features = rows_to_features(
                    _as_lists(data["instances"], signature), signature, frame=False
                )
                rows.extend(np.asarray(features).tolist())
            except PayloadError:
                pass  # the acceptance check itself will report these rows
    e2e = sets.e2e

    def check(engine: Engine) -> str | None:
        assert e2e is not None
        result = check_e2e(
            e2e, lambda body: answer_v1(engine, signature, "", body), atol=sets.e2e_atol
        )
        return None if result.passed else result.summary

    return BundleChecks(rows=rows, e2e=check if e2e is not None else None)


def _as_lists(rows: list[Any], signature: Signature) -> list[Any]:
    names = signature.feature_names or ()
    return [[row.get(n) for n in names] if isinstance(row, dict) else row for row in rows]
