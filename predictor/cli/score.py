"""``python -m predictor score``: score files of rows with a model, offline; and ``drift-report``.

The model is loaded with every check and acceptance gate the server runs, and rows are checked
by the request path's own code (``predictor.scoring``). Exit codes: 0 done; 1 the model was
refused, or more rows than ``--max_errors`` could not be scored (everything else is written);
2 the run could not be done.
"""

from __future__ import annotations

import argparse
import re
import shlex
import signal
import sys
from collections.abc import Sequence

from predictor.cli.flags import add_settings_flags, settings_from
from predictor.errors import InterruptedRunError
from predictor.exits import run_command

MODEL_FLAGS = (
    "model_uri",
    "model_sha256",
    "require_digest",
    "allow_version_skew",
    "download_dir",
    "store_deadline_seconds",
    "fast_path",
)


def shard(text: str) -> tuple[int, int]:
    """``i/N``: this run takes every N-th input file, starting with the i-th (from 0)."""
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise argparse.ArgumentTypeError("expected i/N with 0 <= i < N, e.g. 0/4")
    return int(match.group(1)), int(match.group(2))


def positive(text: str) -> int:
    """A whole number above 0."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("expected a whole number above 0")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``score``."""
    parser = argparse.ArgumentParser(prog="python -m predictor score", description=__doc__)
    parser.add_argument(
        "--input",
        required=True,
        help="a CSV, Parquet or JSON Lines file, a folder or gs:// prefix of them, or a glob",
    )
    parser.add_argument(
        "--output",
        required=True,
        help="a file (.csv, .parquet, .jsonl) for one output, or a folder or gs:// prefix "
        "for one output per input file (named as the input)",
    )
    parser.add_argument(
        "--outputs", default="", help="comma-separated outputs, e.g. predict,predict_proba"
    )
    parser.add_argument("--id_column", help="the input column that names each row")
    parser.add_argument(
        "--max_errors",
        type=int,
        default=0,
        help="rows that may fail to be scored before the run exits 1 (default 0)",
    )
    parser.add_argument("--workers", type=positive, default=1, help="processes that score")
    parser.add_argument(
        "--chunk_rows",
        type=positive,
        default=10_000,
        help="rows per part: what an interrupted run keeps, and resumes from (default 10,000)",
    )
    parser.add_argument(
        "--shard", type=shard, default=(0, 1), help="i/N: score every N-th input file from the i-th"
    )
    parser.add_argument(
        "--engine",
        choices=("local", "spark"),
        default="local",
        help="local (processes on this machine) or spark (a Spark session; the spark extra)",
    )
    parser.add_argument(
        "--spark_master",
        help="with --engine spark: the master (default: spark-submit's, else local[*])",
    )
    add_settings_flags(parser, only=MODEL_FLAGS, title="the model (also PREDICTOR_<NAME>)")
    return parser


def score(argv: Sequence[str]) -> int:
    """Run ``score`` with ``argv``; returns the exit status."""
    args = build_parser().parse_args(argv)
    from predictor.cli.offline import configure_logging
    from predictor.scoring.run import ScoreJob, run

    configure_logging()
    job = ScoreJob(
        input=args.input,
        output=args.output,
        outputs=tuple(o.strip() for o in args.outputs.split(",") if o.strip()),
        id_column=args.id_column,
        max_errors=args.max_errors,
        workers=args.workers,
        chunk_rows=args.chunk_rows,
        shard=args.shard,
        progress=sys.stderr.isatty(),
    )

    def work() -> None:
        # SIGTERM (a pod's stop, kill) ends the run as Ctrl-C does: parts kept, how to resume said.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            if args.engine == "spark":
                from predictor.spark.run import run_on_spark

                result = run_on_spark(job, settings_from(args), args.spark_master)
            else:
                result = run(job, settings_from(args))
        except InterruptedRunError as e:
            command = shlex.join([sys.executable, "-m", "predictor", "score", *argv])
            raise InterruptedRunError(f"{e}: {command}") from None
        print(
            f"done: {len(result.files)} file(s), {result.rows} rows scored, {result.errors} refused"
        )

    return run_command("predictor score", work)


DRIFT_REPORT = """``drift-report``: the drift of a file against the model's reference.

Prints, per feature, the population stability index against the reference the bundle carries
(publish --sample), the share of missing values, the numbers outside the reference's range and
the strings of a category it never saw; then the predictions' index. The same code as the
server's live drift, so the figures match /metrics for the same rows. Exit 0; 1 when the model
is refused by its checks; 2 when it carries no reference or an input cannot be read.
"""


def drift_report_parser() -> argparse.ArgumentParser:
    """The flags of ``drift-report``."""
    parser = argparse.ArgumentParser(
        prog="python -m predictor drift-report", description=DRIFT_REPORT
    )
    parser.add_argument(
        "--input",
        required=True,
        help="a CSV, Parquet or JSON Lines file, a folder or bucket prefix of them, or a glob",
    )
    add_settings_flags(parser, only=MODEL_FLAGS, title="the model (also PREDICTOR_<NAME>)")
    return parser


def drift_report(argv: Sequence[str]) -> int:
    """Run ``drift-report`` with ``argv``; returns the exit status."""
    args = drift_report_parser().parse_args(argv)
    from predictor.cli.offline import configure_logging
    from predictor.scoring.drift_report import drift_report as report

    configure_logging()

    def work() -> None:
        print(report(settings_from(args), args.input).render())

    return run_command("predictor drift-report", work)
