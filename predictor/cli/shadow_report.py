"""``python -m predictor shadow-report LOG...``: how the shadow compares, from prediction logs.

Each LOG is a JSON Lines file, a folder of them or a glob (as ``--prediction_log`` writes them;
copy a gs:// log down first, e.g. ``gcloud storage cp -r``). Prints the agreement rate, the
confusion matrix of primary against shadow labels, the probability differences and the PSI of
the two output distributions. Exit 0, or 2 when a log cannot be read.
"""

from __future__ import annotations

import argparse
import glob
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from predictor.errors import ConfigError
from predictor.exits import run_command
from predictor.shadow.report import describe, summarize


def log_files(specs: Sequence[str]) -> list[Path]:
    """The JSON Lines files that files, folders and globs name, in name order."""
    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found += sorted(path.glob("*.jsonl"))
        elif any(c in spec for c in "*?["):
            found += [Path(p) for p in sorted(glob.glob(spec))]
        else:
            found.append(path)
    return found


def records(paths: Sequence[Path]) -> Iterator[dict[str, Any]]:
    """Every record of the logs (a torn last line, from a crash, is skipped)."""
    for path in paths:
        with path.open("rb") as f:
            for line in f:
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    yield record


def shadow_report(argv: Sequence[str]) -> int:
    """Run ``shadow-report``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m predictor shadow-report", description=__doc__)
    parser.add_argument("logs", nargs="+", help="JSON Lines files, folders of them, or globs")
    args = parser.parse_args(argv)

    def work() -> None:
        paths = log_files(args.logs)
        missing = [str(p) for p in paths if not p.is_file()]
        if missing or not paths:
            raise ConfigError(f"no such log: {', '.join(missing) or args.logs[0]}")
        print(describe(summarize(records(paths))))

    return run_command("predictor shadow-report", work)
