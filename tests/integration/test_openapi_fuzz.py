"""Schema-driven fuzzing: schemathesis against the server's own OpenAPI document, on a real process.

Every documented operation (KServe's routes and ours) is called with generated paths, queries
and bodies; no answer may be a 5xx, and the server must still serve afterwards.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers import REPO_ROOT, ServerFactory


def test_no_documented_operation_answers_a_5xx(server: ServerFactory, demo_model_dir: Path) -> None:
    running = server.start(str(demo_model_dir), name="taxi")
    schemathesis = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [str(schemathesis), "run", f"{running.url}/openapi.json", "--checks", "not_a_server_error",
         "--max-examples", "25", "--seed", "20261122", "--request-timeout", "10"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    assert "0 failures" in result.stdout or "passed" in result.stdout, result.stdout[-2000:]
    ok = httpx.post(f"{running.url}/v1/models/taxi:predict", json={"instances": [[1, 2, 3]]})
    assert ok.status_code == 200
