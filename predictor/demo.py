"""A small, reproducible demo model: NYC-taxi-style trip duration classes from made-up trips.

Features are the pickup zone and drop-off zone (ids 1..263, laid out on a 1 km grid so that
nearby ids are nearby places) and the passenger count; the label is ``short`` (< 10 min),
``medium`` (10-25 min) or ``long`` (> 25 min). The data are synthetic, drawn from a fixed seed,
so the same model comes out on every machine with the same library versions.
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier

FEATURES = ("pickup_zone", "dropoff_zone", "passenger_count")
N_ZONES = 263
GRID_WIDTH = 16


def make_trips(n: int, *, seed: int = 42) -> tuple[pd.DataFrame, np.ndarray]:
    """Draw ``n`` synthetic trips and their duration class."""
    rng = np.random.default_rng(seed)
    pickup = rng.integers(1, N_ZONES + 1, size=n)
    dropoff = rng.integers(1, N_ZONES + 1, size=n)
    passengers = rng.integers(1, 7, size=n)
    km = np.abs(pickup % GRID_WIDTH - dropoff % GRID_WIDTH) + np.abs(
        pickup // GRID_WIDTH - dropoff // GRID_WIDTH
    )
    minutes = 3.0 + 2.5 * km + 0.5 * passengers + rng.normal(0.0, 4.0, size=n)
    labels = np.where(minutes < 10, "short", np.where(minutes <= 25, "medium", "long"))
    frame = pd.DataFrame(
        {"pickup_zone": pickup, "dropoff_zone": dropoff, "passenger_count": passengers}
    ).astype(np.float64)
    return frame, labels


def train_demo_model(*, n: int = 4000, seed: int = 42) -> GradientBoostingClassifier:
    """Fit the demo classifier on synthetic trips."""
    features, labels = make_trips(n, seed=seed)
    model = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=seed)
    return model.fit(features, labels)


def save_demo_model(out_dir: Path, *, seed: int = 42) -> Path:
    """Train the demo model and write it to ``out_dir/model.joblib``; returns the file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.joblib"
    joblib.dump(train_demo_model(seed=seed), path)
    return path


def publish_demo_bundles(registry: Path, work: Path) -> list[str]:
    """Publish demo bundles ``taxi/1.0.0`` (seed 42) and ``taxi/1.1.0`` (seed 43) to ``registry``.

    Each carries an end-to-end set (20 rows, answers recorded at publish time) and a confidence
    set (300 labelled trips, accuracy at least 0.6). Returns the published locations.
    """
    import json

    from predictor.publishing.publish import BundleSpec, publish

    features, labels = make_trips(300, seed=7)
    rows = features.to_numpy().tolist()
    e2e, confidence = work / "e2e.json", work / "confidence.json"
    work.mkdir(parents=True, exist_ok=True)
    e2e.write_text(json.dumps({"instances": rows[:20]}))
    confidence.write_text(json.dumps({"instances": rows, "labels": labels.tolist()}))
    published = []
    for version, seed in (("1.0.0", 42), ("1.1.0", 43)):
        model_file = save_demo_model(work / version, seed=seed)
        spec = BundleSpec(
            model_file=model_file,
            name="taxi",
            version=version,
            created_by="demo",
            e2e_file=e2e,
            confidence_file=confidence,
            metric="accuracy",
            minimum=0.6,
            training_data_uri="synthetic://taxi-trips",
            training_data_version=f"seed-{seed}",
            feature_extractor_version="none",
        )
        published.append(publish(spec, str(registry)))
    return published
