"""Scoring parts: in this process (``--workers 1``) or in worker processes.

A worker loads the model with every check (``load_accepted``) when it starts; each task scores
one chunk and writes its part: the refused rows first, then the part itself, whose appearance
records it as done.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa

from predictor.inference.signature import Signature
from predictor.loading.gate import load_accepted
from predictor.loading.loader import LoadedModel
from predictor.scoring.chunks import Columns, Score, score_chunk, scorer
from predictor.scoring.tables import to_frame, write_table
from predictor.settings import Settings

_WORKER: tuple[Score, Signature] | None = None


def _start_worker(settings: Settings, outputs: tuple[str, ...]) -> None:
    global _WORKER
    # Ctrl-C reaches every process of the terminal's group: the run stops in the main process,
    # which lets the chunks in hand finish; a worker that stopped too would print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loaded = load_accepted(settings)
    _WORKER = (scorer(loaded.engine, loaded.signature, outputs), loaded.signature)


def score_part(
    table: pa.Table,
    numbers: tuple[str, ...],
    columns: Columns,
    first_row: int,
    part: Path,
    fmt: str,
    outputs: tuple[str, ...],
) -> list[Path]:
    """Score one chunk and write its part (refused rows first, then the part, which records it)."""
    assert _WORKER is not None, "the worker was not started"
    score, signature = _WORKER
    chunk = to_frame(table, numbers)
    scored = score_chunk(chunk, columns, signature, outputs, score, first_row)
    written = []
    if len(scored.errors):
        errors_path = part.with_name(f"{part.name}.errors{fmt}")
        write_table(scored.errors, errors_path)
        written.append(errors_path)
    final = part.with_name(f"{part.name}-{len(scored.table)}-{len(scored.errors)}{fmt}")
    write_table(scored.table, final)
    written.append(final)
    return written


class _Inline(Executor):
    """Runs each task at once, in this process (``--workers 1``)."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        future: Future[object] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:
            future.set_exception(e)
        return future


@contextmanager
def executor(
    workers: int, settings: Settings, outputs: tuple[str, ...], loaded: LoadedModel
) -> Iterator[Executor]:
    """Where parts are scored: this process (``loaded`` as it is), or ``workers`` processes."""
    global _WORKER
    if workers <= 1:
        _WORKER = (scorer(loaded.engine, loaded.signature, outputs), loaded.signature)
        yield _Inline()
        return
    # forkserver, not fork: the model has run in this process, and a forked OpenMP runtime can
    # hang in the child.
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(settings, outputs)
    ) as pool:
        yield pool
