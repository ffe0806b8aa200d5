"""Module boundaries: serving never imports the rollout tooling, and the example config parses."""

from __future__ import annotations

import subprocess
import sys

from predictor.rollout.analysis import AnalysisConfig
from tests.helpers import REPO_ROOT


def test_serving_does_not_import_rollout() -> None:
    code = (
        "import sys, predictor.server.model_server, predictor.__main__, predictor.cli.main, predictor.server.model;"
        "print(sorted(m for m in sys.modules if m.startswith('predictor.rollout')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_example_analysis_file_is_valid() -> None:
    config = AnalysisConfig.load(REPO_ROOT / "scripts" / "analysis.example.yaml")
    assert config.max_psi == 0.2
    assert config.min_requests == 200
