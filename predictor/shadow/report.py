"""What a prediction log says about primary and shadow; pure functions over its records.

- the agreement rate, over every logged row;
- the confusion matrix of primary against shadow labels (classifiers);
- the largest probability difference per row: mean, median, 95th percentile, largest;
- the population stability index (PSI) of the two output distributions: over the labels for a
  classifier, over ten bins of the primary's values for a regressor. Below 0.1 is usually read
  as no shift, above 0.25 as a large one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PSI_FLOOR = 1e-4
"""Share given to an empty bin, so that PSI stays finite."""


@dataclass
class ShadowReport:
    """The comparison over the records of one or more prediction logs."""

    rows: int = 0
    agreed: int = 0
    versions: set[tuple[str, str]] = field(default_factory=set)
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    deltas: list[float] = field(default_factory=list)
    primary_values: list[float] = field(default_factory=list)
    shadow_values: list[float] = field(default_factory=list)

    @property
    def agreement(self) -> float:
        """Share of rows on which the two agree."""
        return self.agreed / self.rows if self.rows else float("nan")

    def psi(self) -> float | None:
        """PSI of the shadow's outputs against the primary's; None when there is nothing."""
        if self.confusion:
            primary = Counter(p for (p, _), n in self.confusion.items() for _ in range(n))
            shadow = Counter(s for (_, s), n in self.confusion.items() for _ in range(n))
            labels = sorted(set(primary) | set(shadow))
            return psi([primary[x] for x in labels], [shadow[x] for x in labels])
        if self.primary_values and self.shadow_values:
            edges = np.unique(np.quantile(self.primary_values, np.linspace(0, 1, 11)[1:-1]))
            a = np.bincount(np.searchsorted(edges, self.primary_values), minlength=edges.size + 1)
            b = np.bincount(np.searchsorted(edges, self.shadow_values), minlength=edges.size + 1)
            return psi(a.tolist(), b.tolist())
        return None


def psi(expected: list[int], actual: list[int]) -> float:
    """Population stability index of two histograms over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=np.float64) / max(sum(expected), 1), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64) / max(sum(actual), 1), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def summarize(records: Iterable[dict[str, Any]]) -> ShadowReport:
    """Fold prediction-log records into a report."""
    report = ShadowReport()
    for record in records:
        report.rows += 1
        report.agreed += bool(record.get("agree"))
        report.versions.add((str(record.get("version")), str(record.get("shadow_version"))))
        mine, theirs = record.get("outputs", {}), record.get("shadow_outputs", {})
        a, b = mine.get("predict"), theirs.get("predict")
        if isinstance(a, int | float) and isinstance(b, int | float) and not _is_label(mine):
            report.primary_values.append(float(a))
            report.shadow_values.append(float(b))
        elif a is not None and b is not None:
            report.confusion[(str(a), str(b))] += 1
        pa, pb = mine.get("predict_proba"), theirs.get("predict_proba")
        if isinstance(pa, list) and isinstance(pb, list) and len(pa) == len(pb) and pa:
            report.deltas.append(max(abs(x - y) for x, y in zip(pa, pb, strict=True)))
    return report


def _is_label(outputs: dict[str, Any]) -> bool:
    """A numeric ``predict`` is a label when probabilities came with it (integer classes)."""
    return "predict_proba" in outputs


def describe(report: ShadowReport) -> str:
    """The report as text, with its sample size."""
    if not report.rows:
        return "no rows in the prediction log(s)"
    pairs = ", ".join(f"{v} vs shadow {s}" for v, s in sorted(report.versions))
    lines = [
        f"versions: {pairs}",
        f"rows: {report.rows}",
        f"agreement: {report.agreement:.4f} ({report.agreed} of {report.rows} rows)",
    ]
    if report.confusion:
        labels = sorted({p for p, _ in report.confusion} | {s for _, s in report.confusion})
        width = max(len(x) for x in [*labels, "primary \\ shadow"])
        lines.append("confusion (rows: primary label, columns: shadow label):")
        lines.append("  " + "primary \\ shadow".ljust(width) + "".join(f" {x:>8}" for x in labels))
        for p in labels:
            counts = "".join(f" {report.confusion[(p, s)]:>8}" for s in labels)
            lines.append("  " + p.ljust(width) + counts)
    if report.deltas:
        d = np.asarray(report.deltas)
        lines.append(
            "largest probability difference per row: "
            f"mean {d.mean():.4f}, median {np.median(d):.4f}, "
            f"p95 {np.quantile(d, 0.95):.4f}, max {d.max():.4f}"
        )
    found = report.psi()
    if found is not None:
        lines.append(f"PSI of shadow vs primary outputs: {found:.4f}")
    return "\n".join(lines)
