"""``python -m predictor score`` as a real process, on real files, compared with scikit-learn.

Covers: 300,000 CSV rows with a few broken ones (every good row equal to scikit-learn's answer,
the broken ones in the errors file by id, the exit code against --max_errors); a run killed
midway and resumed (each row exactly once); Parquet, JSON Lines, folders and globs; a pipeline
over categorical columns and a text pipeline; several workers; gs:// in and out through
fake-gcs-server; and the one-line refusals.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from predictor.scoring.run import ScoreJob, run
from predictor.settings import Settings
from tests.gcs import GCSBucket
from tests.helpers import REPO_ROOT, wait_until
from tests.helpers import run_score as score

pytestmark = pytest.mark.timeout(180)

FEATURES = [f"f{i}" for i in range(20)]
BROKEN_TEXT = {10: "oops", 150_000: "12,5", 299_999: "x"}  # row -> a value in f3 that is no number
BROKEN_INF = 77_777  # f5 is infinite there


def started(args: list[str], *, stderr: int = subprocess.DEVNULL) -> subprocess.Popen[str]:
    """``score`` as a process left running (to be stopped or killed by the test)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTOR_")}
    return subprocess.Popen(
        [sys.executable, "-m", "predictor", "score", *args],
        cwd=REPO_ROOT,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )


@pytest.fixture(scope="module")
def linear(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LogisticRegression]:
    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.normal(size=(2000, 20)), columns=FEATURES)
    model = LogisticRegression().fit(x, (x.f0 + x.f1 > 0).astype(int))
    path = tmp_path_factory.mktemp("linear") / "model.joblib"
    joblib.dump(model, path)
    return path, model


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """300,000 rows with an id column, four of them broken; returns the file and the clean rows."""
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(rng.normal(size=(300_000, 20)), columns=FEATURES)
    frame.insert(0, "trip_id", [f"t{i}" for i in range(len(frame))])
    written = frame.astype({"f3": object, "f5": object})
    for row, text in BROKEN_TEXT.items():
        written.loc[row, "f3"] = text
    written.loc[BROKEN_INF, "f5"] = "inf"
    path = tmp_path_factory.mktemp("big") / "trips.csv"
    written.to_csv(path, index=False)
    return path, frame


def test_300k_csv_rows_match_scikit_learn_and_broken_rows_are_reported_by_id(
    tmp_path: Path, linear: tuple[Path, LogisticRegression], big_csv: tuple[Path, pd.DataFrame]
) -> None:
    model_path, model = linear
    csv, frame = big_csv
    out = tmp_path / "scores.csv"
    args = ["--model_uri", str(model_path), "--input", str(csv), "--output", str(out)]
    args += ["--id_column", "trip_id", "--outputs", "predict,predict_proba", "--workers", "2"]

    refused = score(*args)
    assert refused.returncode == 1, refused.stderr
    assert "4 row(s) could not be scored, more than --max_errors 0" in refused.stderr

    out.unlink()
    (tmp_path / "scores.errors.csv").unlink()
    done = score(*args, "--max_errors", "4")
    assert done.returncode == 0, done.stderr
    assert "299996 rows scored, 4 refused" in done.stdout

    scored = pd.read_csv(out)
    broken = sorted([*BROKEN_TEXT, BROKEN_INF])
    good = frame.drop(index=broken)
    assert list(scored.columns) == ["trip_id", "predict", "predict_proba_0", "predict_proba_1"]
    assert scored["trip_id"].tolist() == good["trip_id"].tolist()
    expected = model.predict_proba(good[FEATURES])
    np.testing.assert_array_equal(scored["predict"], model.predict(good[FEATURES]))
    np.testing.assert_allclose(scored[["predict_proba_0", "predict_proba_1"]], expected, atol=1e-12)

    errors = pd.read_csv(tmp_path / "scores.errors.csv")
    assert errors["trip_id"].tolist() == [f"t{i}" for i in broken]
    assert errors["reason"].tolist() == [
        "feature 'f3': expected a number, got text",
        "feature 'f5': got infinity",
        "feature 'f3': expected a number, got text",
        "feature 'f3': expected a number, got text",
    ]
    assert not (tmp_path / "_parts").exists()


def _scored_parts(folder: Path) -> list[Path]:
    """The finished parts of scored rows (not the refused rows' parts, nor files being written)."""
    return [
        p
        for p in folder.iterdir()
        if p.suffix == ".csv" and ".errors." not in p.name and not p.name.startswith(".")
    ]


def test_a_killed_run_resumes_and_writes_each_row_once(
    tmp_path: Path, linear: tuple[Path, LogisticRegression], big_csv: tuple[Path, pd.DataFrame]
) -> None:
    model_path, _ = linear
    csv, frame = big_csv
    out = tmp_path / "out"
    args = ["--model_uri", str(model_path), "--input", str(csv), "--output", str(out)]
    args += ["--chunk_rows", "3000", "--max_errors", "4"]  # 100 parts
    process = started(args)
    parts = out / "_parts" / csv.name
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if parts.is_dir() and len(_scored_parts(parts)) >= 5:
            break
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    kept = len(_scored_parts(parts))
    assert 5 <= kept < 100 and not (out / csv.name).exists()

    rerun = score(*args)

    assert rerun.returncode == 0, rerun.stderr
    assert "part(s) kept from an earlier run" in rerun.stdout
    scored = pd.read_csv(out / csv.name)
    expected_rows = [i for i in range(len(frame)) if i not in {*BROKEN_TEXT, BROKEN_INF}]
    assert scored["row"].tolist() == expected_rows
    assert pd.read_csv(out / "trips.errors.csv")["row"].tolist() == sorted(
        [*BROKEN_TEXT, BROKEN_INF]
    )
    assert not (out / "_parts").exists()


CITIES = np.array(["paris", "lyon", "nice"])


@pytest.fixture(scope="module")
def categorical(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, pd.DataFrame]:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "city": CITIES[rng.integers(0, 3, 500)],
            "zone": rng.integers(1, 4, 500).astype(str),  # categories that look like numbers
            "area": rng.normal(60, 15, 500),
        }
    )
    y = np.where((frame.city == "paris") | (frame.area > 70), "high", "low")
    model = make_pipeline(
        ColumnTransformer(
            [("cat", OneHotEncoder(handle_unknown="error"), ["city", "zone"])],
            remainder="passthrough",
        ),
        LogisticRegression(),
    ).fit(frame, y)
    path = tmp_path_factory.mktemp("categorical") / "model.joblib"
    joblib.dump(model, path)
    return path, model, frame


def test_parquet_and_jsonl_folders_with_categorical_columns(
    tmp_path: Path, categorical: tuple[Path, object, pd.DataFrame]
) -> None:
    model_path, model, frame = categorical
    inputs = tmp_path / "in"
    inputs.mkdir()
    frame.iloc[:200].to_parquet(inputs / "a.parquet")
    unknown = frame.iloc[200:].copy()
    unknown.iloc[5, 0] = "rome"  # a category the encoder never saw: the model refuses the row
    unknown.to_json(inputs / "b.jsonl", orient="records", lines=True)
    (inputs / "notes.txt").write_text("not an input")
    out = tmp_path / "out"

    result = score(
        "--model_uri", str(model_path), "--input", str(inputs), "--output", str(out),
        "--max_errors", "1", "--chunk_rows", "64",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    a = pd.read_parquet(out / "a.parquet")
    assert a["predict"].tolist() == list(model.predict(frame.iloc[:200]))  # type: ignore[attr-defined]
    b = pd.read_json(out / "b.jsonl", lines=True)
    good = frame.iloc[200:].drop(index=205)
    assert b["row"].tolist() == [i - 200 for i in good.index]
    assert b["predict"].tolist() == list(model.predict(good))  # type: ignore[attr-defined]
    errors = pd.read_json(out / "b.errors.jsonl", lines=True)
    assert errors["row"].tolist() == [5]
    assert errors["reason"].tolist()[0].startswith("the model rejected the input")
    assert sorted(p.name for p in out.iterdir()) == ["a.parquet", "b.errors.jsonl", "b.jsonl"]


def test_a_text_pipeline_scores_one_text_column_from_a_glob(tmp_path: Path) -> None:
    texts = ["great plot", "boring and long", "loved it", "awful script"] * 25
    labels = [1, 0, 1, 0] * 25
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, labels)
    joblib.dump(model, tmp_path / "text.joblib")
    for day in ("d1", "d2"):
        pd.DataFrame({"review": texts[:10], "id": range(10)}).to_csv(
            tmp_path / f"{day}.csv", index=False
        )

    result = score(
        "--model_uri", str(tmp_path / "text.joblib"), "--input", str(tmp_path / "d*.csv"),
        "--output", str(tmp_path / "all.csv"), "--id_column", "id",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    scored = pd.read_csv(tmp_path / "all.csv")
    assert scored["predict"].tolist() == list(model.predict(texts[:10])) * 2


def test_gcs_input_prefix_and_output_prefix(
    gcs: GCSBucket, tmp_path: Path, linear: tuple[Path, LogisticRegression]
) -> None:
    model_path, model = linear
    rng = np.random.default_rng(6)
    frames = {}
    for name in ("p1.csv", "p2.csv"):
        frames[name] = pd.DataFrame(rng.normal(size=(300, 20)), columns=FEATURES)
        local = tmp_path / name
        frames[name].to_csv(local, index=False)
        gcs.upload_file(f"in/{name}", local)
    env = {"STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"]}

    result = score(
        "--model_uri", str(model_path), "--input", gcs.uri("in/"), "--output", gcs.uri("out/"),
        "--chunk_rows", "100", env=env,
    )  # fmt: skip
    again = score(
        "--model_uri", str(model_path), "--input", gcs.uri("in/"), "--output", gcs.uri("out/"),
        "--chunk_rows", "100", env=env,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    names = sorted(b.name for b in gcs.client().list_blobs(gcs.name, prefix="out/"))
    assert names == ["out/p1.csv", "out/p2.csv"]
    for name, frame in frames.items():
        local = tmp_path / f"scored-{name}"
        gcs.client().bucket(gcs.name).blob(f"out/{name}").download_to_filename(local)
        assert pd.read_csv(local)["predict"].tolist() == model.predict(frame).tolist()
    assert again.returncode == 0, again.stderr
    assert "already scored" in again.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--id_column", "nope"], "the input has no id column 'nope'"),
        (["--outputs", "predict_log_probability"], "unknown output name"),
        (["--input", "/nonexistent/*.csv"], "no input files"),
    ],
)
def test_what_cannot_be_run_ends_with_one_line_and_exit_2(
    tmp_path: Path,
    linear: tuple[Path, LogisticRegression],
    extra: list[str],
    message: str,
) -> None:
    model_path, _ = linear
    csv = tmp_path / "in.csv"
    pd.DataFrame(np.zeros((3, 20)), columns=FEATURES).to_csv(csv, index=False)
    args = {"--model_uri": str(model_path), "--input": str(csv), "--output": str(tmp_path / "o")}
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        args[flag] = value

    result = score(*[x for pair in args.items() for x in pair])

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("predictor score: ") and message in lines[-1]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o" / "_parts").exists()  # a failed run leaves no empty folders


def test_a_file_without_rows_is_reported_and_an_existing_output_is_left_alone(
    tmp_path: Path, linear: tuple[Path, LogisticRegression]
) -> None:
    model_path, _ = linear
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "empty.csv").write_text(",".join(FEATURES) + "\n")
    pd.DataFrame(np.ones((2, 20)), columns=FEATURES).to_csv(folder / "two.csv", index=False)
    out = tmp_path / "all.csv"
    out.write_text("kept\n")
    said: list[str] = []
    settings = Settings(model_uri=str(model_path))

    left = run(ScoreJob(input=str(folder), output=str(out)), settings, report=said.append)
    done = run(ScoreJob(input=str(folder), output=str(tmp_path / "out")), settings, said.append)

    assert left.files == [] and out.read_text() == "kept\n"
    assert said[0].endswith("exists already; nothing to do (outputs are never overwritten)")
    assert "empty.csv: no rows; nothing written" in said
    assert [f.name for f in done.files] == ["two.csv"] and done.rows == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["two.csv"]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_run_says_what_it_kept_and_how_to_resume(
    tmp_path: Path,
    linear: tuple[Path, LogisticRegression],
    big_csv: tuple[Path, pd.DataFrame],
    stop: signal.Signals,
) -> None:
    model_path, _ = linear
    csv, _ = big_csv
    out = tmp_path / "out"
    args = ["--model_uri", str(model_path), "--input", str(csv), "--output", str(out)]
    # Small parts: hundreds of them, so that the run is far from done when it is stopped, even
    # when this test's process is slow to see the first three.
    args += ["--chunk_rows", "500", "--max_errors", "4"]
    process = started(args, stderr=subprocess.PIPE)
    parts = out / "_parts" / csv.name
    wait_until(
        lambda: process.poll() is not None or (parts.is_dir() and len(_scored_parts(parts)) >= 3),
        timeout=120,
        what="three scored parts",
        every=0.05,
    )
    assert process.poll() is None, "the run ended before it could be stopped"
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    on_disk = sum(int(p.name.split("-")[2]) + int(p.name.split("-")[3].split(".")[0])
                  for p in _scored_parts(parts))  # fmt: skip
    said = re.match(r"^predictor score: interrupted: (\d+) row\(s\) scored by this run ", last)
    assert said is not None, last
    # Every part it counts is on disk; the one chunk being recorded as it stopped may not be.
    assert on_disk - 500 <= int(said.group(1)) <= on_disk and on_disk >= 1500
    assert last.endswith(
        "the same command again resumes from them: "
        f"{sys.executable} -m predictor score {' '.join(args)}"
    )


def test_parts_of_a_run_with_other_settings_are_not_thrown_away(
    tmp_path: Path, linear: tuple[Path, LogisticRegression]
) -> None:
    model_path, _ = linear
    csv = tmp_path / "in.csv"
    pd.DataFrame(np.ones((50, 20)), columns=FEATURES).to_csv(csv, index=False)
    out = tmp_path / "out"
    parts = out / "_parts" / "in.csv"
    parts.mkdir(parents=True)
    (parts / "0123456789ab-000000-10-0.csv").write_text("row,predict\n")  # another run's part

    result = score("--model_uri", str(model_path), "--input", str(csv), "--output", str(out))

    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "predictor score: in.csv: 1 part(s) of an earlier run with other settings (model, input "
        "content, --chunk_rows, --outputs, --id_column or format) are kept for it; run with the "
        "same settings to resume, or delete the _parts/ folder of the output to start over"
    )
    assert (parts / "0123456789ab-000000-10-0.csv").exists()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 300 KB tmpfs: a disk that fills up part-way through a run, and that can be grown."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (this test runs as root, as CI does): {mounted.stderr}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)


def test_a_full_disk_stops_the_run_cleanly_and_a_rerun_with_space_resumes(
    tmp_path: Path, linear: tuple[Path, LogisticRegression], small_disk: Path
) -> None:
    model_path, model = linear
    rows = pd.DataFrame(
        np.random.default_rng(8).normal(size=(20_000, len(FEATURES))), columns=FEATURES
    )
    rows.insert(0, "id", [f"r{i}" for i in range(len(rows))])
    source = tmp_path / "rows.csv"
    rows.to_csv(source, index=False)
    args = ["--model_uri", str(model_path), "--input", str(source), "--chunk_rows", "2000",
            "--id_column", "id", "--outputs", "predict,predict_proba"]  # fmt: skip

    full = score(*args, "--output", str(small_disk / "scored.csv"))
    assert full.returncode == 2, full.stderr
    assert "Traceback" not in full.stderr
    assert full.stderr.strip().splitlines()[-1] == (
        f"predictor score: no space left on the disk of {small_disk}/_parts/rows.csv while "
        f"writing {_last_part_name(full.stderr)}; what was written whole is kept: free some "
        "space and run the same command again to resume"
    )
    kept = _scored_parts(small_disk / "_parts" / "rows.csv")
    assert 1 <= len(kept) < 10
    assert not [p for p in (small_disk / "_parts" / "rows.csv").iterdir() if p.name.startswith(".")]
    for part in kept:  # every part left is whole
        assert len(pd.read_csv(part)) == 2000

    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    resumed = score(*args, "--output", str(small_disk / "scored.csv"))
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(kept)} part(s) kept from an earlier run" in resumed.stdout + resumed.stderr
    roomy = score(*args, "--output", str(tmp_path / "roomy.csv"))
    assert roomy.returncode == 0, roomy.stderr
    assert (small_disk / "scored.csv").read_bytes() == (tmp_path / "roomy.csv").read_bytes()
    scored = pd.read_csv(small_disk / "scored.csv")
    assert scored["id"].tolist() == rows["id"].tolist()
    assert scored["predict"].tolist() == model.predict(rows[FEATURES]).tolist()


def _last_part_name(stderr: str) -> str:
    found = re.search(r"while writing (\S+);", stderr)
    assert found is not None, stderr
    return found.group(1)
