"""A batch scoring run: load and accept the model, score every input file in parts, join them.

Each file is read in chunks of ``chunk_rows`` rows; each chunk is scored (``chunks``) and
written as a part whose name records the run's fingerprint (model digest, chunk size, outputs,
id column, format), the chunk's number and its counts of scored and refused rows. A part is
recorded only once complete, so a run that is killed loses at most the parts in hand, and a
rerun with the same settings skips the parts it finds. When every part of a file is in, they
are joined into the output (and the refused rows into ``<name>.errors.<ext>``), and the parts
are dropped.

With ``workers`` above 1, chunks are scored in that many processes (``workers``), each loading
the model with every check. At most two chunks per worker are in hand at once, so memory stays
flat whatever the input's size.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections import deque
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from predictor.errors import InterruptedRunError, ScoringError
from predictor.inference.batch import requested_outputs
from predictor.loading.gate import LoadedModel, load_accepted
from predictor.scoring.chunks import Columns, input_columns, number_columns
from predictor.scoring.joining import (
    PART_NAME,
    FileResult,
    Report,
    RunResult,
    counted,
    join_all,
    join_parts,
    summary,
)
from predictor.scoring.places import (
    PARTS,
    BucketPrefix,
    Destination,
    InputFile,
    LocalFolder,
    StoreFor,
    list_inputs,
    local_copy,
    split_bucket,
    stores_for,
)
from predictor.scoring.tables import FORMATS, read_tables, table_format
from predictor.scoring.workers import executor, score_part
from predictor.settings import Settings
from predictor.stores.base import is_bucket

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreJob:
    """What to score, where to, and how."""

    input: str
    output: str
    outputs: tuple[str, ...] = ()
    id_column: str | None = None
    max_errors: int = 0
    workers: int = 1
    chunk_rows: int = 10_000
    shard: tuple[int, int] = (0, 1)
    progress: bool = False


def run(job: ScoreJob, settings: Settings, report: Report = print) -> RunResult:
    """Score ``job.input`` into ``job.output``; returns what was done.

    Raises:
        ArtifactError: the model cannot be loaded, or was refused by its checks.
        ScoringError: an input or output cannot be used.
        TooManyRefusedRowsError: more rows than ``job.max_errors`` could not be scored (everything
            else was written).
        InterruptedRunError: the run was stopped (``KeyboardInterrupt``: Ctrl-C, or SIGTERM where
            the caller turns it into one); its finished parts are kept for a rerun.
    """
    result = RunResult()
    try:
        return _run(job, settings, report, result)
    except KeyboardInterrupt:
        raise InterruptedRunError(
            f"interrupted: {result.kept_rows} row(s) scored by this run are kept in finished "
            f"parts under {job.output}; the same command again resumes from them"
        ) from None


def _run(job: ScoreJob, settings: Settings, report: Report, result: RunResult) -> RunResult:
    loaded = load_accepted(settings)
    outputs = requested_outputs(list(job.outputs) or None, loaded.signature)
    stores = stores_for(settings.store_deadline_seconds)
    index, count = job.shard
    inputs = [f for k, f in enumerate(list_inputs(job.input, stores)) if k % count == index]
    single = job.output.lower().endswith(FORMATS)
    if single and count > 1:
        raise ScoringError("a sharded run writes a folder or prefix, not one file (--output)")
    destination, output_name = destination_for(job.output, single, stores)
    if single and destination.has(output_name):
        report(f"{job.output} exists already; nothing to do (outputs are never overwritten)")
        return result
    with tempfile.TemporaryDirectory(prefix="predictor-score-") as tmp:
        work = Path(tmp)
        with executor(job.workers, settings, outputs, loaded) as pool:
            for item in inputs:
                fmt = table_format(output_name) if single else table_format(item.name)
                if not single and destination.has(item.name):
                    report(f"{item.name}: already scored in {job.output}; skipped")
                    continue
                plan = _Plan(job, loaded, outputs, fmt, destination, item, work, stores, result)
                scored = plan.score(pool, report, joined=not single)
                if scored is not None:
                    result.files.append(scored)
        if single and result.files:
            result = join_all(result, destination, output_name, work, report)
    result.check_refused(job.max_errors)
    return result


def destination_for(output: str, single: bool, stores: StoreFor) -> tuple[Destination, str]:
    """Where a run writes (a folder or a bucket prefix), and the output's name when one file."""
    if is_bucket(output):
        scheme, bucket, path = split_bucket(output)
        folder, _, name = path.rpartition("/") if single else (path, "", "")
        return BucketPrefix(f"{scheme}://{bucket}/{folder}", stores(scheme)), name
    target = Path(output).expanduser()
    return (LocalFolder(target.parent), target.name) if single else (LocalFolder(target), "")


def score_file(
    job: ScoreJob, settings: Settings, loaded: LoadedModel, item: InputFile, stores: StoreFor
) -> FileResult | None:
    """Score one input file of ``job`` in this process, with ``loaded``: the Spark engine's task.

    Its parts go to the output and are joined into ``<name>`` and ``<name>.errors.<ext>``, as
    a local run joins them; when the run writes one file, the parts stay for the caller to join.
    Returns None when the file has no rows.
    """
    outputs = requested_outputs(list(job.outputs) or None, loaded.signature)
    single = job.output.lower().endswith(FORMATS)
    destination, output_name = destination_for(job.output, single, stores)
    fmt = table_format(output_name) if single else table_format(item.name)
    with (
        tempfile.TemporaryDirectory(prefix="predictor-score-") as tmp,
        executor(1, settings, outputs, loaded) as inline,
    ):
        plan = _Plan(job, loaded, outputs, fmt, destination, item, Path(tmp), stores, RunResult())
        return plan.score(inline, _quiet, joined=not single)


def _quiet(line: str) -> None:
    """A task's report: its caller reports what the task returns."""


def fingerprint(
    loaded: LoadedModel, job: ScoreJob, outputs: tuple[str, ...], fmt: str, content: str
) -> str:
    """What makes parts of two runs interchangeable.

    The same model, input content, chunk size, outputs, id column and format.
    """
    text = "|".join((loaded.artifact.sha256, content, str(job.chunk_rows), ",".join(outputs)))
    return hashlib.sha256(f"{text}|{fmt}|{job.id_column}".encode()).hexdigest()[:12]


@dataclass
class _Plan:
    job: ScoreJob
    loaded: LoadedModel
    outputs: tuple[str, ...]
    fmt: str
    destination: Destination
    item: InputFile
    work: Path
    stores: StoreFor
    progress: RunResult

    def score(self, executor: Executor, report: Report, *, joined: bool) -> FileResult | None:
        """Score the file into parts, and join them when ``joined``; None when it has no rows."""
        started = time.monotonic()
        path, content = local_copy(self.item, self.work, self.stores)
        stamp = fingerprint(self.loaded, self.job, self.outputs, self.fmt, content)
        finished = {n for n in self.destination.parts(self.item.name) if PART_NAME.match(n)}
        done = {n for n in finished if n.startswith(stamp)}
        if finished - done:
            raise ScoringError(
                f"{self.item.name}: {len(finished - done)} part(s) of an earlier run with other "
                "settings (model, input content, --chunk_rows, --outputs, --id_column or "
                "format) are kept for it; run with the same settings to resume, or delete "
                f"the {PARTS}/ folder of the output to start over"
            )
        done_chunks = {int(PART_NAME.match(n).group(2)) for n in done}  # type: ignore[union-attr]
        folder = self.destination.part_folder(self.item.name, self.work)
        try:
            columns = self._score_parts(executor, path, stamp, folder, done_chunks)
        except BaseException:
            self.destination.tidy(self.item.name)  # no empty part folders left behind
            raise
        if is_bucket(self.item.location):  # a downloaded copy
            path.unlink(missing_ok=True)
        if columns is None:
            self.destination.drop_parts(self.item.name)
            report(f"{self.item.name}: no rows; nothing written")
            return None
        names = sorted(n for n in self.destination.parts(self.item.name) if n.startswith(stamp))
        result = counted(self.item.name, names, time.monotonic() - started, len(done_chunks))
        if joined:
            result = join_parts(
                result, self.destination, [(self.item.name, names)], self.item.name, self.work
            )
            report(summary(result))
        return result

    def _score_parts(
        self, executor: Executor, path: Path, stamp: str, folder: Path, done_chunks: set[int]
    ) -> Columns | None:
        """Score the chunks not done yet into parts; the input's columns (None: no rows)."""
        pending: deque[Future[list[Path]]] = deque()
        bar = tqdm(desc=self.item.name, unit=" rows", disable=not self.job.progress)
        columns: Columns | None = None
        numbers: tuple[str, ...] = ()
        first_row = 0
        for number, table in enumerate(read_tables(path, self.job.chunk_rows)):
            if columns is None:
                columns = input_columns(
                    table.column_names, self.loaded.signature, self.job.id_column
                )
                numbers = number_columns(columns, self.loaded.signature)
            if number not in done_chunks:
                part = folder / f"{stamp}-{number:06d}"
                pending.append(
                    executor.submit(
                        score_part, table, numbers, columns, first_row, part, self.fmt, self.outputs
                    )
                )
            first_row += table.num_rows
            while pending and (len(pending) >= 2 * max(1, self.job.workers) or pending[0].done()):
                self._record(pending.popleft().result(), bar)
        while pending:
            self._record(pending.popleft().result(), bar)
        bar.close()
        return columns

    def _record(self, written: list[Path], bar: tqdm[Any]) -> None:
        for path in written:
            self.destination.put_part(self.item.name, path)
        match = PART_NAME.match(written[-1].name)
        if match:
            rows = int(match.group(3)) + int(match.group(4))
            self.progress.kept_rows += rows
            bar.update(rows)
