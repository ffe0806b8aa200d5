"""The pure core of batch scoring: matching columns, reading cells, isolating refused rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from predictor.errors import ScoringError
from predictor.inference.fastpath import SklearnEngine
from predictor.inference.introspect import signature_of
from predictor.scoring.chunks import (
    arrow_matrix,
    input_columns,
    output_columns,
    score_chunk,
    scorer,
    to_matrix,
)
from predictor.scoring.tables import (
    concatenate,
    read_tables,
    table_format,
    to_frame,
    write_table,
)

FEATURES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(200, 3)), columns=FEATURES)
    return LogisticRegression().fit(x, np.where(x.a > 0, "up", "down"))


def test_named_features_are_taken_by_name_and_other_columns_ignored(
    model: LogisticRegression,
) -> None:
    signature = signature_of(model)
    columns = input_columns(["id", "c", "b", "a", "note"], signature, "id")
    assert columns.features == ("a", "b", "c")
    with pytest.raises(ScoringError, match="lacks the feature column\\(s\\) b; the model takes"):
        input_columns(["id", "a", "c"], signature, "id")
    with pytest.raises(ScoringError, match="no id column 'key'"):
        input_columns(["a", "b", "c"], signature, "key")


def test_unnamed_features_take_every_column_but_the_id_in_file_order(
    model: LogisticRegression,
) -> None:
    bare = LogisticRegression().fit(np.eye(3), [0, 1, 1])
    signature = signature_of(bare)
    assert input_columns(["x", "id", "y", "z"], signature, "id").features == ("x", "y", "z")
    with pytest.raises(ScoringError, match="takes 3 feature columns .* has 2 column"):
        input_columns(["x", "y"], signature, None)


def test_refused_rows_are_isolated_and_every_other_row_is_scored(
    model: LogisticRegression,
) -> None:
    signature = signature_of(model)
    frame = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(9)],
            "a": [0.1, -1, 2, np.inf, 0.5, 1, -2, 0.3, 0.2],
            "b": ["1", "2", "three", "4", "5", "6", "7", "8", "9"],
            "c": [0.0, 1, 2, 3, np.nan, 5, 6, 7, 8],
        }
    )
    engine = SklearnEngine(model)
    score = scorer(engine, signature, ("predict", "predict_proba"))

    chunk = score_chunk(
        frame, input_columns(list(frame.columns), signature, "id"), signature,
        ("predict", "predict_proba"), score, first_row=100,
    )  # fmt: skip

    assert chunk.errors["id"].tolist() == ["r2", "r3", "r4"]
    assert chunk.errors["reason"].tolist() == [
        "feature 'b': expected a number, got text",
        "feature 'a': got infinity",
        "feature 'c': got a missing value (NaN/null); this model cannot take one there",
    ]
    good = frame.drop(index=[2, 3, 4])
    x = good[FEATURES].astype(float)
    assert chunk.table["id"].tolist() == good["id"].tolist()
    assert chunk.table["predict"].tolist() == model.predict(x).tolist()
    np.testing.assert_allclose(
        chunk.table[["predict_proba_down", "predict_proba_up"]], model.predict_proba(x)
    )


def test_without_an_id_column_rows_are_numbered_from_the_chunk_start(
    model: LogisticRegression,
) -> None:
    signature = signature_of(model)
    frame = pd.DataFrame({"a": [1.0, np.inf, 2.0], "b": [0.0] * 3, "c": [0.0] * 3})
    score = scorer(SklearnEngine(model), signature, ("predict",))
    chunk = score_chunk(
        frame, input_columns(list(frame.columns), signature, None), signature, ("predict",),
        score, first_row=50,
    )  # fmt: skip
    assert chunk.table["row"].tolist() == [50, 52]
    assert chunk.errors["row"].tolist() == [51]


def test_output_columns_are_named_after_classes_or_positions(model: LogisticRegression) -> None:
    signature = signature_of(model)
    proba = np.array([[0.2, 0.8]])
    assert list(output_columns("predict_proba", proba, signature)) == [
        "predict_proba_down",
        "predict_proba_up",
    ]
    assert list(output_columns("transform", np.zeros((1, 3)), signature)) == [
        "transform_0",
        "transform_1",
        "transform_2",
    ]


@pytest.mark.parametrize("fmt", [".csv", ".parquet", ".jsonl"])
def test_parts_written_and_joined_read_back_as_one_table(tmp_path: Path, fmt: str) -> None:
    frames = [
        pd.DataFrame({"id": [1, 2], "predict": ["x", "y"]}),
        pd.DataFrame({"id": [], "predict": []}),
        pd.DataFrame({"id": [3], "predict": ["z"]}),
    ]
    parts = []
    for i, frame in enumerate(frames):
        parts.append(tmp_path / f"p{i}{fmt}")
        write_table(frame, parts[-1])
    concatenate(parts, tmp_path / f"all{fmt}")
    (table,) = list(read_tables(tmp_path / f"all{fmt}", 100))
    joined = to_frame(table, ["id"])
    assert joined["id"].tolist() == [1, 2, 3]
    assert joined["predict"].tolist() == ["x", "y", "z"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_unknown_formats_are_refused_by_name() -> None:
    with pytest.raises(ScoringError, match="expected a name ending in .csv, .parquet, .jsonl"):
        table_format("rows.xlsx")


def test_csv_is_read_in_exact_chunks_and_numbers_are_read_where_the_model_takes_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,a,b\n" + "".join(f"{i},{i}.5,x{i}\n" for i in range(10)) + "10,oops,\n")
    tables = list(read_tables(path, 4))
    assert [t.num_rows for t in tables] == [4, 4, 3]
    first = to_frame(tables[0], ["a"])
    assert first["a"].dtype == np.float64 and first["a"].tolist() == [0.5, 1.5, 2.5, 3.5]
    assert first["id"].tolist() == ["0", "1", "2", "3"]  # text unless the model takes a number
    last = to_frame(tables[2], ["a"])
    assert last["a"].tolist() == ["8.5", "9.5", "oops"]  # a cell that is no number: left as text
    assert last["b"].tolist()[-1] is None  # an empty cell is missing


def test_an_arrow_batch_of_numbers_becomes_the_matrix_pandas_would_make() -> None:
    bare = LogisticRegression().fit(np.eye(3), [0, 1, 1])
    signature = signature_of(bare)
    batch = pa.RecordBatch.from_pydict(
        {
            "id": ["a", "b", "c"],
            "x": pa.array([1, None, 3], pa.int32()),
            "y": pa.array([True, None, False]),
            "z": pa.array([0.5, float("nan"), None], pa.float64()),
        }
    )
    columns = input_columns(batch.schema.names, signature, "id")
    matrix, refused = arrow_matrix(batch, columns, signature)
    expected, expected_refused = to_matrix(batch.to_pandas(), columns, signature)
    assert matrix.dtype == np.float64 and refused == expected_refused == {}
    np.testing.assert_array_equal(matrix, expected)  # nulls are NaN in both


def test_an_arrow_batch_with_text_cells_is_read_as_pandas_reads_it() -> None:
    bare = LogisticRegression().fit(np.eye(2), [0, 1])
    signature = signature_of(bare)
    batch = pa.RecordBatch.from_pydict({"x": [1.0, 2.0], "y": ["3", "four"]})
    columns = input_columns(batch.schema.names, signature, None)
    matrix, refused = arrow_matrix(batch, columns, signature)
    assert refused == {1: "feature 1: expected a number, got text"}
    np.testing.assert_array_equal(matrix[0], [1.0, 3.0])
