"""Batch scoring against the one-shot way: ``model.predict(pd.read_csv(path))``.

    python bench/score.py [--rows 300000] [--rounds 3]

For each model (LogisticRegression and the forest of ``bench/servers.py``, 20 features) a CSV
of ``--rows`` rows with an id column is written once. Then, alternating, each ``--rounds`` times:

- **one-shot**: a process that loads the model and runs ``pd.read_csv`` and ``model.predict``
  (no output written), timed twice: inside itself (read and predict only: no imports, no
  loading) and from the outside as a whole process;
- **score**: ``python -m predictor score --outputs predict`` timed from the outside, as a whole
  process: start-up, every load-time check, reading, checking each row, scoring, writing the
  output and joining its parts.

Both are pinned to core 0 (``score --workers 1``). Then ``score --workers 2`` unpinned, and the
RSS of ``score`` sampled while it runs on the file and on one four times its size (flat memory:
the same level for both). The table gives rows per second and score/one-shot.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import psutil
from servers import FEATURES, ROOT, SERVER_CORE, make_models

ONE_SHOT = """
import sys, time, joblib, pandas as pd
model = joblib.load(sys.argv[1])
started = time.perf_counter()
frame = pd.read_csv(sys.argv[2])
model.predict(frame.drop(columns=["id"]).to_numpy())
print(time.perf_counter() - started)
"""


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.normal(size=(rows, FEATURES)), columns=[f"f{i}" for i in range(FEATURES)]
    )
    frame.insert(0, "id", np.arange(rows))
    frame.to_csv(path, index=False)


def one_shot(model: Path, csv: Path) -> tuple[float, float]:
    """Seconds of ``read_csv`` + ``predict`` inside the process, and of the whole process."""
    started = time.perf_counter()
    out = subprocess.run(
        ["taskset", "-c", SERVER_CORE, sys.executable, "-c", ONE_SHOT, str(model), str(csv)],
        capture_output=True,
        text=True,
        check=True,
    )
    whole = time.perf_counter() - started
    return float(out.stdout.strip().splitlines()[-1]), whole


def score(model: Path, csv: Path, out: Path, workers: int, pin: bool = True) -> float:
    """Seconds of a whole ``score`` process."""
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "predictor", "score", "--model_uri", str(model)]
    command += ["--input", str(csv), "--output", str(out), "--id_column", "id"]
    command += ["--outputs", "predict", "--workers", str(workers)]
    if pin:
        command = ["taskset", "-c", SERVER_CORE, *command]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, capture_output=True, check=True)
    return time.perf_counter() - started


def rss_during(model: Path, csv: Path, out: Path) -> tuple[float, float, list[float]]:
    """RSS (MB) of a ``score`` run on ``csv``, sampled every 0.1 s while it runs.

    Returns the median of the second half of the run (start-up behind it), the peak, and the
    samples at a fifth, two fifths, ... of the run (a trend that rises would show a leak).
    """
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "predictor", "score", "--model_uri", str(model)]
    command += ["--input", str(csv), "--output", str(out), "--id_column", "id"]
    command += ["--outputs", "predict"]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    watched = psutil.Process(process.pid)
    samples = []
    while process.poll() is None:
        try:
            samples.append(watched.memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    if process.returncode != 0:
        raise RuntimeError(f"score exited {process.returncode}")
    settled = samples[len(samples) // 2 :]  # the second half: start-up is behind it
    trend = [samples[len(samples) * k // 5] for k in range(1, 5)]
    return statistics.median(settled), max(samples), trend


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="lr,rf")
    args = parser.parse_args()
    print(
        "| model | rows | one-shot rows/s (read+predict / process) | score rows/s (process, "
        "1 worker) | score / one-shot (read+predict / process) | score rows/s (2 workers) "
        "| RSS MB, median of the run's second half (rows / 4x rows) | peak RSS MB (rows / 4x) "
        "| RSS MB at 1/5 .. 4/5 of the 4x run |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        work = Path(tmp)
        paths = make_models(work / "models")
        csv, big = work / "rows.csv", work / "rows4x.csv"
        write_csv(csv, args.rows)
        write_csv(big, 4 * args.rows, seed=1)
        for model in args.models.split(","):
            model_file = paths[model] / "model.joblib"
            joblib.load(model_file)  # fail early on a broken model
            shots, wholes, scores = [], [], []
            for _ in range(args.rounds):
                inside, whole = one_shot(model_file, csv)
                shots.append(inside)
                wholes.append(whole)
                scores.append(score(model_file, csv, work / "out.csv", workers=1))
            two = statistics.median(
                score(model_file, csv, work / "out.csv", workers=2, pin=False)
                for _ in range(args.rounds)
            )
            rss, peak, _ = rss_during(model_file, csv, work / "out.csv")
            rss_big, peak_big, trend = rss_during(model_file, big, work / "out.csv")
            shot, whole = statistics.median(shots), statistics.median(wholes)
            ours = statistics.median(scores)
            print(
                f"| {model} | {args.rows:,} | {args.rows / shot:,.0f} / {args.rows / whole:,.0f} "
                f"| {args.rows / ours:,.0f} | {shot / ours:.2f} / {whole / ours:.2f} "
                f"| {args.rows / two:,.0f} | {rss:.0f} / {rss_big:.0f} | {peak:.0f} / {peak_big:.0f} "
                f"| {' '.join(f'{r:.0f}' for r in trend)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
