"""The one CLI boundary: what a command prints and ends with, for success, refusals and bugs.

Covers ``predictor.exits.run_command`` directly, and through the real entry points:
``python -m predictor shadow-report`` (a missing log is exit 2 in one line), ``scripts/canary.py``
(bad ``--steps`` is a usage error, exit 2, not a traceback), and a bug inside a command (exit 70
with its traceback, never dressed as bad input).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from predictor.errors import AcceptanceError, ConfigError
from predictor.exits import EXIT_BUG, run_command
from tests.helpers import REPO_ROOT


def test_success_is_0_and_prints_nothing_of_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command("predictor x", lambda: print("done")) == 0
    assert capsys.readouterr() == ("done\n", "")


def test_an_error_of_ours_is_one_line_and_its_own_exit_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def refused() -> None:
        raise AcceptanceError("the model failed its acceptance checks")

    def cannot_run() -> None:
        raise ConfigError("expected --output")

    assert run_command("predictor x", refused) == 1
    assert capsys.readouterr().err == "predictor x: the model failed its acceptance checks\n"
    assert run_command("predictor x", cannot_run) == 2
    assert capsys.readouterr().err == "predictor x: expected --output\n"


def test_a_refusal_can_be_said_otherwise(capsys: pytest.CaptureFixture[str]) -> None:
    said: list[str] = []

    def refused() -> None:
        raise AcceptanceError("no")

    assert run_command("predictor x", refused, say=lambda e: said.append(f"REFUSED: {e}")) == 1
    assert said == ["REFUSED: no"]
    assert capsys.readouterr().err == ""


def test_a_bug_prints_its_traceback_and_exits_70(capsys: pytest.CaptureFixture[str]) -> None:
    def bug() -> None:
        raise ValueError("an unexpected value deep inside")

    assert run_command("predictor x", bug) == EXIT_BUG == 70
    err = capsys.readouterr().err
    assert err.startswith("predictor x: unexpected error (a bug; please report it):\n")
    assert "Traceback (most recent call last)" in err
    assert "ValueError: an unexpected value deep inside" in err


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=50
    )


@pytest.mark.timeout(60)
def test_shadow_report_on_a_missing_log_exits_2_in_one_line(tmp_path: Path) -> None:
    result = _run("-m", "predictor", "shadow-report", str(tmp_path / "none.jsonl"))
    assert result.returncode == 2
    assert result.stderr == f"predictor shadow-report: no such log: {tmp_path / 'none.jsonl'}\n"


@pytest.mark.timeout(60)
def test_canary_bad_steps_is_a_usage_error_not_a_bug(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    analysis = tmp_path / "analysis.yaml"
    analysis.write_text("prometheus: http://127.0.0.1:9\n")
    result = _run(
        "scripts/canary.py", "auto", "taxi", "--kubeconfig", str(kubeconfig),
        "--analysis", str(analysis), "--steps", "10,half,100",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.endswith(
        "canary auto: --steps: expected comma-separated whole percents, e.g. 10,25,50,100\n"
    )
    assert "Traceback" not in result.stderr
