"""Reading and writing the tables batch scoring takes and gives: CSV, Parquet, JSON Lines.

The format is chosen by the file's extension. Reading streams tables of ``chunk_rows`` rows
(the same boundaries on every run, so a resumed run finds the parts it wrote), with Arrow's
readers. Writing is
atomic: a table appears under its name only once complete, which is how a finished part is
recorded. A disk that fills up (or a quota) ends the run with one ``ScoringError``
(``written_whole``): what was written whole is kept, and a rerun with space resumes from it.
"""

from __future__ import annotations

import csv
import errno
import os
import shutil
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from predictor.errors import ScoringError

FORMATS = (".csv", ".parquet", ".jsonl")


def table_format(name: str) -> str:
    """The format of a file by its extension (``.csv``, ``.parquet`` or ``.jsonl``).

    Raises:
        ScoringError: any other extension.
    """
    for suffix in FORMATS:
        if name.lower().endswith(suffix):
            return suffix
    raise ScoringError(
        f"cannot tell the format of {Path(name).name!r}; expected a name ending in "
        f"{', '.join(FORMATS)}"
    )


def read_tables(path: Path, chunk_rows: int) -> Iterator[pa.Table]:
    """The rows of ``path`` in tables of ``chunk_rows`` rows (the last one fewer).

    CSV cells are read as text (CSV has no types; ``to_frame`` reads the numbers), with the
    usual markers of a missing value (empty, ``NA``, ``null``, ``NaN``, ...) read as missing.
    Parquet keeps its types. JSON Lines values keep theirs, or become text in a column that
    mixes kinds.

    Raises:
        ScoringError: the file cannot be read as its format.
    """
    fmt = table_format(path.name)
    try:
        if fmt == ".csv":
            batches: Iterator[pa.RecordBatch] = _csv_batches(path)
        elif fmt == ".parquet":
            batches = pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
        else:
            batches = _jsonl_batches(path, chunk_rows)
        yield from _rechunk(batches, chunk_rows)
    except (ValueError, OSError, pa.ArrowException) as e:
        reason = " ".join(str(e).split())[:200]
        raise ScoringError(f"cannot read {path.name} as {fmt[1:]}: {reason}") from e


def _csv_batches(path: Path) -> Iterator[pa.RecordBatch]:
    with path.open(newline="") as f:
        header = next(csv.reader(f), [])
    text = pa_csv.ConvertOptions(
        column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=True
    )
    reader = pa_csv.open_csv(path, read_options=_READ, convert_options=text)
    yield from reader


_READ = pa_csv.ReadOptions(block_size=1 << 22)


def _jsonl_batches(path: Path, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    for frame in pd.read_json(path, lines=True, chunksize=chunk_rows, dtype=False):
        yield from _arrow(frame).to_batches()


def _rechunk(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Tables of exactly ``rows`` rows (the last one fewer) from batches of any size."""
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        held.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(held)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            held, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(held)


def to_frame(table: pa.Table, numbers: Collection[str]) -> pd.DataFrame:
    """A table as a DataFrame, with the text of each column in ``numbers`` read as numbers.

    A column whose every cell reads as a number becomes float64; one with a cell that does
    not stays text, for the caller to say which rows are wrong.
    """
    columns = {}
    for name in numbers:
        column = table.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            try:
                columns[name] = pc.cast(column, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass  # a cell that is no number: left as text
    for name, column in columns.items():
        table = table.set_column(table.schema.get_field_index(name), name, column)
    frame: pd.DataFrame = table.to_pandas()
    return frame


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` in the format its name says, atomically."""
    fmt = table_format(path.name)
    with written_whole(path) as partial:
        if fmt == ".jsonl":
            frame.to_json(partial, orient="records", lines=True, force_ascii=False)
        else:
            table = _arrow(frame)
            if fmt == ".csv":
                pa_csv.write_csv(table, partial)
            else:
                pq.write_table(table, partial)


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """The ``.partial`` file to write ``path`` into: renamed to ``path`` when whole, else gone.

    Raises:
        ScoringError: the disk (or a quota) is full; nothing is left half-written.
    """
    partial = path.with_name(f".{path.name}.partial")
    try:
        yield partial
        os.replace(partial, path)
    except OSError as e:
        if e.errno not in NO_SPACE and "No space left on device" not in str(e):
            raise  # pyarrow reports ENOSPC as an OSError whose errno it does not set
        raise ScoringError(
            f"no space left on the disk of {path.parent} while writing {path.name}; what was "
            "written whole is kept: free some space and run the same command again to resume"
        ) from e
    finally:
        partial.unlink(missing_ok=True)


def _arrow(frame: pd.DataFrame) -> pa.Table:
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Mixed Python types in one column (ids of several kinds): write them as text.
        mixed = [c for c in frame.columns if frame[c].dtype.kind == "O"]
        return pa.Table.from_pandas(frame.astype(dict.fromkeys(mixed, str)), preserve_index=False)


def concatenate(parts: Sequence[Path], dest: Path) -> None:
    """Join part files (one format, same columns) into ``dest``, in order, atomically."""
    fmt = table_format(dest.name)
    with written_whole(dest) as partial:
        if fmt == ".parquet":
            _concatenate_parquet(parts, partial)
        else:
            with partial.open("wb") as out:
                for i, part in enumerate(parts):
                    with part.open("rb") as f:
                        if fmt == ".csv" and i > 0:
                            f.readline()  # each part repeats the header
                        shutil.copyfileobj(f, out, 1 << 20)


def _concatenate_parquet(parts: Sequence[Path], dest: Path) -> None:
    tables = (pq.read_table(part) for part in parts)
    writer: pq.ParquetWriter | None = None
    empty: pa.Table | None = None
    try:
        for table in tables:
            if table.num_rows == 0:  # its columns may have no type; nothing to add
                empty = empty if empty is not None else table
                continue
            if writer is None:
                writer = pq.ParquetWriter(dest, table.schema)
            elif table.schema != writer.schema:
                try:
                    table = table.cast(writer.schema)
                except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as e:
                    raise ScoringError(
                        f"the parts of {dest.name} have columns of different types "
                        "(an id column read as numbers in one chunk and as text in another?)"
                    ) from e
            writer.write_table(table)
        if writer is None and empty is not None:
            pq.write_table(empty, dest)
    finally:
        if writer is not None:
            writer.close()
