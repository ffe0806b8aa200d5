"""What ``publish --sample FILE`` records from the sample: the input schema and the drift reference.

The schema is each feature's name and datatype (``bundle.sample``). The reference is the
sample's features and the model's predictions on it (``predictor.drift.reference``), written as
``reference.json``, its sha256 in model.json.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from predictor.bundle.sample import read_sample, sample_features
from predictor.drift.reference import NUMBER, STRING, Reference, build_reference
from predictor.errors import PayloadError
from predictor.inference.signature import NUMERIC, PREDICT, Signature
from predictor.loading.gate import LoadedModel, answer
from predictor.stores.files import sha256_file

logger = logging.getLogger(__name__)

REFERENCE = "reference.json"


def described_by_sample(
    path: Path, loaded: LoadedModel
) -> tuple[list[dict[str, Any]], Reference | None]:
    """The features the sample at ``path`` describes, and its drift reference.

    Raises:
        PublishError: the sample is unreadable or does not fit the model.
    """
    frame = read_sample(path)
    features = sample_features(frame, loaded.signature)
    return features, sample_reference(frame, features, loaded)


def sample_reference(
    frame: pd.DataFrame, features: list[dict[str, Any]], loaded: LoadedModel
) -> Reference | None:
    """The reference of the sample ``frame`` for the model (None for a text model)."""
    signature = loaded.signature
    if signature.text or signature.takes_mappings:
        return None
    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    names = [str(f["name"]) for f in features]
    columns = [
        (name, frame[name].to_numpy(), NUMBER if f["dtype"] == NUMERIC else STRING)
        for name, f in zip(names, features, strict=True)
    ]
    predictions = _predictions(frame[names], loaded)
    return build_reference(columns, predictions, classifier=signature.classes is not None)


def write_reference(reference: Reference, folder: Path) -> dict[str, str]:
    """Write ``reference.json`` into the bundle folder; its manifest entry (path, sha256)."""
    path = folder / REFERENCE
    path.write_text(json.dumps(reference.document(), sort_keys=True) + "\n")
    return {"path": REFERENCE, "sha256": sha256_file(path)}


def _predictions(frame: pd.DataFrame, loaded: LoadedModel) -> np.ndarray | None:
    """The model's predictions on the sample's rows (those it takes); None if it takes none."""
    signature: Signature = loaded.signature
    if signature.task not in ("classification", "regression"):
        return None
    cells = frame.astype(object).mask(frame.isna(), None)
    for rows in (cells, cells[frame.notna().all(axis=1)]):
        if rows.empty:
            continue
        try:
            answered = answer(loaded, {"instances": rows.to_numpy().tolist()})
        except PayloadError as e:
            logger.info("the sample's rows with missing values were left out: %s", e)
            continue
        return np.asarray(answered[PREDICT], dtype=object if signature.classes else np.float64)
    logger.warning("the model takes none of the sample's rows: no prediction reference")
    return None
