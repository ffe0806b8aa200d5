"""Reading and writing the tables batch scoring takes and gives: CSV, Parquet, JSON Lines.

The format is chosen by the file's extension. Reading streams chunks of at most ``chunk_rows``
rows (the same boundaries on every run, so a resumed run finds the parts it wrote). Writing is
atomic: a table appears under its name only once complete, which is how a finished part is
recorded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Hashable, Iterator, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
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


def read_chunks(
    path: Path, chunk_rows: int, text_columns: Sequence[str] = ()
) -> Iterator[pd.DataFrame]:
    """The rows of ``path`` in chunks of at most ``chunk_rows`` rows.

    ``text_columns`` are read as text whatever they look like (a category "7" stays "7").

    Raises:
        ScoringError: the file cannot be read as its format.
    """
    fmt = table_format(path.name)
    try:
        if fmt == ".csv":
            dtypes: dict[Hashable, type[str]] = dict.fromkeys(text_columns, str)
            yield from pd.read_csv(path, chunksize=chunk_rows, dtype=dtypes, low_memory=False)
        elif fmt == ".parquet":
            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
        else:
            yield from pd.read_json(path, lines=True, chunksize=chunk_rows, dtype=False)
    except (ValueError, OSError, pa.ArrowException) as e:
        reason = " ".join(str(e).split())[:200]
        raise ScoringError(f"cannot read {path.name} as {fmt[1:]}: {reason}") from e


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` in the format its name says, atomically."""
    fmt = table_format(path.name)
    partial = path.with_name(f".{path.name}.partial")
    try:
        if fmt == ".jsonl":
            frame.to_json(partial, orient="records", lines=True, force_ascii=False)
        else:
            table = _arrow(frame)
            if fmt == ".csv":
                pa_csv.write_csv(table, partial)
            else:
                pq.write_table(table, partial)
        os.replace(partial, path)
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
    partial = dest.with_name(f".{dest.name}.partial")
    try:
        if fmt == ".parquet":
            _concatenate_parquet(parts, partial)
        else:
            with partial.open("wb") as out:
                for i, part in enumerate(parts):
                    with part.open("rb") as f:
                        if fmt == ".csv" and i > 0:
                            f.readline()  # each part repeats the header
                        shutil.copyfileobj(f, out, 1 << 20)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)


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
