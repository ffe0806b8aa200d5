"""The reference a bundle carries for drift: what the training data looked like, per feature.

Built at publish from the sample (``publish --sample FILE``) and the model's predictions on it,
written as ``reference.json`` (its sha256 in model.json, checked at load like every bundle file):

- a number: quantile bin edges (``bins`` bins, 10 by default), each bin's share, min, max;
- a string: the ``TOP`` most frequent categories with their shares, the rest as "other", and
  every category seen (up to ``KNOWN_MAX``, to count unseen ones live);
- each with its missing share (a missing value is its own bin);
- the predictions: class shares (as a string feature) or score quantiles (as a number).

Shares are of all rows: the bins' shares and the missing share sum to 1. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from predictor.drift.binning import assign, is_missing

NUMBER, STRING = "number", "string"
BINS = 10
TOP = 20
KNOWN_MAX = 1000
PREDICTION = "prediction"


@dataclass(frozen=True)
class FeatureReference:
    """One feature's reference: its bins and their shares (the missing bin last)."""

    name: str
    kind: str
    shares: tuple[float, ...]
    """Each bin's share of all rows, then the missing share."""
    edges: tuple[float, ...] = ()
    """A number's inner bin edges: bin ``i`` holds values in ``(edges[i-1], edges[i]]``."""
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()
    """A string's top categories; the bin after them is "other"."""
    known: tuple[str, ...] | None = None
    """Every category the sample held (None: more than ``KNOWN_MAX``, not listed)."""

    @property
    def bins(self) -> int:
        """Bins, the missing bin included."""
        return len(self.shares)

    def document(self) -> dict[str, Any]:
        """As ``reference.json`` holds it."""
        found: dict[str, Any] = {"name": self.name, "kind": self.kind, "shares": list(self.shares)}
        if self.kind == NUMBER:
            found.update(edges=list(self.edges), min=self.minimum, max=self.maximum)
        else:
            found.update(categories=list(self.categories))
            found["known"] = list(self.known) if self.known is not None else None
        return found

    @classmethod
    def from_document(cls, data: Mapping[str, Any]) -> FeatureReference:
        """From ``reference.json``; ``KeyError``/``ValueError`` when malformed."""
        known = data.get("known")
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            shares=tuple(float(s) for s in data["shares"]),
            edges=tuple(float(e) for e in data.get("edges", ())),
            minimum=data.get("min"),
            maximum=data.get("max"),
            categories=tuple(str(c) for c in data.get("categories", ())),
            known=tuple(str(c) for c in known) if known is not None else None,
        )


@dataclass(frozen=True)
class Reference:
    """The reference of a model: its features, and its predictions where known."""

    rows: int
    features: tuple[FeatureReference, ...]
    prediction: FeatureReference | None = None

    def document(self) -> dict[str, Any]:
        """As ``reference.json`` holds it."""
        return {
            "rows": self.rows,
            "features": [f.document() for f in self.features],
            "prediction": self.prediction.document() if self.prediction is not None else None,
        }

    @classmethod
    def from_document(cls, data: Mapping[str, Any]) -> Reference:
        """From ``reference.json``; ``KeyError``/``ValueError``/``TypeError`` when malformed."""
        prediction = data.get("prediction")
        return cls(
            rows=int(data["rows"]),
            features=tuple(FeatureReference.from_document(f) for f in data["features"]),
            prediction=FeatureReference.from_document(prediction) if prediction else None,
        )


def feature_reference(
    name: str, values: np.ndarray, kind: str, bins: int = BINS
) -> FeatureReference:
    """The reference of one column of the sample."""
    missing = is_missing(values)
    present = values[~missing]
    if kind == NUMBER:
        numbers = present.astype(np.float64)
        inner = np.quantile(numbers, np.linspace(0, 1, bins + 1)[1:-1]) if len(numbers) else []
        edges = tuple(float(e) for e in np.unique(inner))
        base = FeatureReference(name, NUMBER, (), edges=edges)
        minimum = float(numbers.min()) if len(numbers) else None
        maximum = float(numbers.max()) if len(numbers) else None
        shares = _shares(assign(base, values), len(edges) + 2)
        return FeatureReference(name, NUMBER, shares, edges, minimum, maximum)
    texts = present.astype(str)
    found, counts = np.unique(texts, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    categories = tuple(str(c) for c in found[order][:TOP])
    known = tuple(sorted(str(c) for c in found)) if len(found) <= KNOWN_MAX else None
    base = FeatureReference(name, STRING, (), categories=categories)
    shares = _shares(assign(base, values), len(categories) + 2)
    return FeatureReference(name, STRING, shares, categories=categories, known=known)


def build_reference(
    columns: Sequence[tuple[str, np.ndarray, str]],
    predictions: np.ndarray | None,
    *,
    classifier: bool,
) -> Reference:
    """The reference of a sample: ``columns`` as (name, values, kind), and the predictions."""
    features = tuple(feature_reference(n, v, k) for n, v, k in columns)
    prediction = None
    if predictions is not None:
        kind = STRING if classifier else NUMBER
        prediction = feature_reference(
            PREDICTION, np.asarray(predictions, dtype=object if classifier else np.float64), kind
        )
    rows = len(columns[0][1]) if columns else 0
    return Reference(rows, features, prediction)


def _shares(indexes: np.ndarray, bins: int) -> tuple[float, ...]:
    counts = np.bincount(indexes, minlength=bins)
    total = counts.sum()
    return tuple(float(c / total) if total else 0.0 for c in counts)
