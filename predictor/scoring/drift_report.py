"""The drift of a file against a model's reference: the table ``drift-report`` prints.

The model is loaded with every check; the file (CSV, Parquet or JSON Lines, local or in a
bucket, one or many as ``score`` takes them) is read and decoded by ``score``'s own code, rows a
request would be refused for are left out (and counted), and what is left goes through the same
``drift.summary.Summary`` as the server's rows, without a window: every row counts. So the
figures equal the server's ``/metrics`` for the same rows.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from predictor.drift.summary import FeatureDrift, Summary
from predictor.errors import PayloadError, ScoringError
from predictor.inference.estimator import run_estimator
from predictor.inference.features import matrix_to_features
from predictor.inference.signature import PREDICT
from predictor.loading.gate import LoadedModel, load_accepted
from predictor.scoring.chunks import input_columns, number_columns, to_matrix
from predictor.scoring.places import list_inputs, local_copy, stores_for
from predictor.scoring.tables import read_tables, to_frame
from predictor.settings import Settings

CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class DriftReport:
    """What ``drift-report`` prints: each feature's figures, the predictions', the row counts."""

    features: list[FeatureDrift]
    prediction_psi: float | None
    rows: int
    refused: int

    def render(self) -> str:
        """The table, one line per feature."""
        width = max([len("feature"), *(len(f.feature) for f in self.features)])
        lines = [f"{'feature':<{width}}  {'psi':>8}  {'missing':>8}  {'out_of_range':>12}  unseen"]
        for f in self.features:
            lines.append(
                f"{f.feature:<{width}}  {f.psi:>8.4f}  {f.missing_ratio:>8.4f}  "
                f"{f.out_of_range:>12}  {f.unseen}"
            )
        if self.prediction_psi is not None:
            lines.append(f"{'prediction':<{width}}  {self.prediction_psi:>8.4f}")
        lines.append(f"rows: {self.rows} (refused, not counted: {self.refused})")
        return "\n".join(lines)


def drift_report(settings: Settings, inputs: str) -> DriftReport:
    """The drift of the rows of ``inputs`` against the model's reference.

    Raises:
        ArtifactError: the model cannot be loaded, or was refused by its checks.
        ScoringError: it carries no reference, or an input cannot be read.
    """
    loaded = load_accepted(settings)
    if loaded.reference is None:
        raise ScoringError(
            "the model carries no drift reference; publish it as a bundle with --sample FILE"
        )
    summary = Summary(loaded.reference, loaded.signature, None)
    stores = stores_for(settings.store_deadline_seconds)
    refused = 0
    with tempfile.TemporaryDirectory(prefix="drift-report-") as work:
        for item in list_inputs(inputs, stores):
            path, _ = local_copy(item, Path(work), stores)
            refused += _add_file(path, loaded, summary)
    return DriftReport(summary.table(), summary.prediction_psi(), summary.rows, refused)


def _add_file(path: Path, loaded: LoadedModel, summary: Summary) -> int:
    """Add a file's rows to ``summary``; how many were refused."""
    signature, engine = loaded.signature, loaded.engine
    refused = 0
    columns = None
    for table in read_tables(path, CHUNK_ROWS):
        if columns is None:
            columns = input_columns(table.column_names, signature, None)
        frame = to_frame(table, number_columns(columns, signature))
        matrix, bad = to_matrix(frame, columns, signature)
        rows = np.flatnonzero(~np.isin(np.arange(len(frame)), list(bad)))
        accepted = _accepted(matrix, rows, loaded)
        refused += len(bad) + len(rows) - sum(len(k) for k in accepted)
        for kept in accepted:
            features = matrix_to_features(matrix[kept], signature, engine.takes_frames)
            summary.add([features], [run_estimator(engine, features, (PREDICT,))])
    return refused


def _accepted(matrix: np.ndarray, rows: np.ndarray, loaded: LoadedModel) -> list[np.ndarray]:
    """``rows`` that decode as a request would, in runs (halving around the ones that do not)."""
    if len(rows) == 0:
        return []
    try:
        matrix_to_features(matrix[rows], loaded.signature, loaded.engine.takes_frames)
        return [rows]
    except PayloadError:
        if len(rows) == 1:
            return []
    middle = len(rows) // 2
    return _accepted(matrix, rows[:middle], loaded) + _accepted(matrix, rows[middle:], loaded)
