"""Joining a file's parts into its output (and its refused rows into ``<name>.errors.<ext>``).

A part's name records the run's fingerprint, the chunk's number and its counts of scored and
refused rows (``PART_NAME``), so what a run holds is read from the names alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from predictor.errors import TooManyRefusedRowsError
from predictor.scoring.places import Destination
from predictor.scoring.tables import concatenate, table_format

Report = Callable[[str], None]

PART_NAME = re.compile(r"^([0-9a-f]{12})-(\d{6})-(\d+)-(\d+)\.(?!errors)")
"""A finished part: fingerprint, chunk number, rows scored, rows refused."""


@dataclass(frozen=True)
class FileResult:
    """How one input file went."""

    name: str
    rows: int
    errors: int
    seconds: float
    output: str
    errors_output: str | None = None
    resumed_parts: int = 0


@dataclass
class RunResult:
    """How the whole run went."""

    files: list[FileResult] = field(default_factory=list)
    kept_rows: int = 0
    """Rows in parts recorded by this run so far (what an interrupted run keeps)."""

    @property
    def rows(self) -> int:
        """Rows scored, over every file."""
        return sum(f.rows for f in self.files)

    @property
    def errors(self) -> int:
        """Rows refused, over every file."""
        return sum(f.errors for f in self.files)

    def check_refused(self, max_errors: int) -> None:
        """Raise when more rows than ``max_errors`` were refused, over every file.

        Raises:
            TooManyRefusedRowsError: naming the files that hold the refused rows.
        """
        if self.errors > max_errors:
            where = ", ".join(f.errors_output for f in self.files if f.errors_output)
            raise TooManyRefusedRowsError(
                f"{self.errors} row(s) could not be scored, more than --max_errors "
                f"{max_errors}; their ids and reasons are in {where}"
            )


def counted(name: str, names: list[str], seconds: float, resumed: int) -> FileResult:
    """A file's result from the names of its parts."""
    rows = errors = 0
    for part in names:
        match = PART_NAME.match(part)
        if match:
            rows += int(match.group(3))
            errors += int(match.group(4))
    return FileResult(name, rows, errors, seconds, "", resumed_parts=resumed)


def join_parts(
    result: FileResult,
    destination: Destination,
    groups: list[tuple[str, list[str]]],
    output_name: str,
    work: Path,
) -> FileResult:
    """Join the parts of ``groups`` into ``output_name`` (and its errors file); drop the parts."""
    fmt = table_format(output_name)
    parts: list[Path] = []
    errors: list[Path] = []
    for group, names in groups:
        local = destination.get_parts(group, names, work)
        parts += [p for p in local if PART_NAME.match(p.name)]
        errors += [p for p in local if ".errors." in p.name]
    joined = work / output_name
    concatenate(parts, joined)
    where = destination.put(joined, output_name)
    errors_where = None
    if errors:
        errors_name = output_name[: -len(fmt)] + ".errors" + fmt
        concatenate(errors, work / errors_name)
        errors_where = destination.put(work / errors_name, errors_name)
    for group, _ in groups:
        destination.drop_parts(group)
    return FileResult(
        result.name,
        result.rows,
        result.errors,
        result.seconds,
        where,
        errors_where,
        result.resumed_parts,
    )


def join_all(
    result: RunResult, destination: Destination, name: str, work: Path, report: Report
) -> RunResult:
    """Join the parts of every file into the one output ``name`` (a single-file run)."""
    groups = [(f.name, sorted(n for n in destination.parts(f.name))) for f in result.files]
    total = FileResult(
        name,
        result.rows,
        result.errors,
        sum(f.seconds for f in result.files),
        "",
        resumed_parts=sum(f.resumed_parts for f in result.files),
    )
    joined = join_parts(total, destination, groups, name, work)
    report(summary(joined))
    return RunResult([joined])


def summary(result: FileResult) -> str:
    """One line on how a file went."""
    rate = result.rows / result.seconds if result.seconds > 0 else 0.0
    text = (
        f"{result.name}: {result.rows} rows scored, {result.errors} refused, "
        f"{result.seconds:.1f}s ({rate:,.0f} rows/s) -> {result.output}"
    )
    if result.errors_output:
        text += f"; refused rows in {result.errors_output}"
    if result.resumed_parts:
        text += f"; {result.resumed_parts} part(s) kept from an earlier run"
    return text
