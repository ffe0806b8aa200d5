"""The commands the documentation shows, run here, with what they print compared to the docs.

Every ``sh`` block of README.md and docs/*.md is read. Run here: every ``curl`` to the demo model
(served on a free port instead of :8080), whose ``# {...}`` output must match (probabilities to
the two decimals shown) or whose ``# header: value`` lines must be printed; ``python -m predictor
call`` against the same server, whose printed table must match; every ``make`` target named must
exist; every ``python -m predictor`` and ``scripts/canary.py`` subcommand named must answer
``--help``. Not run: what needs a cluster or a cloud account, and blocks that start a server of
their own (the bandit's).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO_ROOT, ServerFactory

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def commands(*, demo_only: bool = False) -> list[tuple[str, list[str]]]:
    """Each command of every ``sh`` block (continuations joined) and the comment lines under it.

    ``demo_only``: only the blocks that call the demo model (none that start a server of their
    own, such as a bandit of published bundles).
    """
    found: list[tuple[str, list[str]]] = []
    for page in PAGES:
        for block in re.findall(r"```sh\n(.*?)```", page.read_text(), flags=re.S):
            if demo_only and re.search(r"-m predictor --model_name|make demo-bundles", block):
                continue
            pending = ""
            attach = False  # comments right under a command (no blank line) are its output
            for line in block.replace("\\\n", " ").splitlines():
                if not pending and line.startswith("#"):
                    if attach:
                        found[-1][1].append(line[1:].strip())
                    continue
                if not pending and not line.strip():
                    attach = False
                    continue
                pending = f"{pending} {line}" if pending else line
                if _complete(pending):
                    found.append((" ".join(pending.split()), []))
                    pending, attach = "", True
    return found


def _complete(text: str) -> bool:
    try:
        shlex.split(text, comments=True)
    except ValueError:  # a quote still open: the command goes on on the next line
        return False
    return True


def close(documented: Any, actual: Any) -> bool:
    """Equal, with documented floats taken as rounded to the digits they show."""
    if isinstance(documented, float):
        return isinstance(actual, float) and abs(actual - documented) <= 0.0051
    if isinstance(documented, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(documented)
            and all(close(d, a) for d, a in zip(documented, actual, strict=True))
        )
    if isinstance(documented, dict):
        return (
            isinstance(actual, dict)
            and documented.keys() == actual.keys()
            and all(close(documented[k], actual[k]) for k in documented)
        )
    return bool(documented == actual)


def test_the_tour_and_the_call_example_answer_as_documented(
    server: ServerFactory, demo_model_dir: Path
) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed; `make test` installs it")
    running = server.start(str(demo_model_dir), name="taxi")
    here = f"127.0.0.1:{running.http_port}"
    ran = 0
    for command, said in commands(demo_only=True):
        if command.startswith("curl ") and "localhost:8080" in command:
            done = subprocess.run(
                command.replace("localhost:8080", here),
                shell=True,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert done.returncode == 0, (command, done.stderr)
            documented = [s for s in said if s.startswith("{")]
            if documented:
                assert close(json.loads(documented[0]), json.loads(done.stdout)), done.stdout
            elif said:  # headers: each documented line, with <placeholders> for what varies
                printed = done.stdout.splitlines()
                for line in said:
                    pattern = re.sub(r"<[^>]*>", ".+", line.replace(".", r"\."))
                    assert any(re.fullmatch(pattern, p.strip(), flags=re.I) for p in printed), (
                        line,
                        done.stdout,
                    )
            ran += 1
        elif " -m predictor call " in command and "$INGRESS" in command:
            argv = shlex.split(command.replace("http://$INGRESS", f"http://{here}"))
            done = subprocess.run(
                [sys.executable, *argv[1:]],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, (command, done.stderr)
            assert [line.split() for line in done.stdout.splitlines()] == [
                line.split() for line in said
            ], done.stdout
            ran += 1
    assert ran >= 7  # the tour's six curl calls and the call example


def test_every_make_target_and_subcommand_named_exists() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-zA-Z0-9_-]+):", makefile, flags=re.M))
    subcommands: set[tuple[str, ...]] = set()
    for command, _ in commands():
        for target in re.findall(r"(?:^|;|&&)\s*make ([a-z][a-z0-9-]*)", command):
            assert target in targets, f"`make {target}` is documented but not a target"
        if match := re.search(r"-m predictor ([a-z][a-z-]*)", command):
            subcommands.add(("-m", "predictor", match.group(1)))
        if match := re.search(r"scripts/canary\.py ([a-z]+)", command):
            subcommands.add(("scripts/canary.py", match.group(1)))
    assert len(subcommands) >= 5
    for sub in sorted(subcommands):
        done = subprocess.run(
            [sys.executable, *sub, "--help"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, (sub, done.stderr[-500:])


def minikube_walk_through() -> str:
    text = (REPO_ROOT / "docs" / "deploying.md").read_text()
    start = text.index("### minikube, step by step")
    return text[start : text.index("\n### ", start + 1)]


def test_the_minikube_walk_through_installs_the_kserve_the_predictor_pins() -> None:
    pinned = re.search(r"^kserve==(\S+)$", (REPO_ROOT / "requirements.lock").read_text(), re.M)
    assert pinned is not None
    section = minikube_walk_through()
    named = set(re.findall(r"kserve/kserve/releases/download/v([0-9.]+)/", section))
    assert named == {pinned.group(1)}, named
    assert f"**KServe v{pinned.group(1)}**" in section


def test_the_calls_to_the_demo_bundle_answer_as_documented(
    server: ServerFactory, tmp_path: Path
) -> None:
    """Every ``curl`` to localhost:8090 (the demo bundle taxi/1.0.0: the minikube walk-through,
    the explanations page), against that bundle served here."""
    registry = demo_registry(tmp_path / "registry")
    running = server.start(str(registry / "taxi" / "1.0.0"), name="taxi")
    assert run_documented_curls("localhost:8090", running.http_port) >= 3


def demo_registry(registry: Path) -> Path:
    """The demo bundles (taxi/1.0.0 and 1.1.0), published into ``registry``."""
    made = subprocess.run(
        [sys.executable, "scripts/make_demo_bundles.py", "--registry", str(registry)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    return registry


def run_documented_curls(address: str, port: int) -> int:
    """Run every documented ``curl`` to ``address`` against ``port``, in order, each answer
    compared with the JSON printed under it; how many ran."""
    ran = 0
    for command, said in commands():
        if not (command.startswith("curl ") and address in command):
            continue
        done = subprocess.run(
            command.replace(address, f"127.0.0.1:{port}"),
            shell=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, (command, done.stderr)
        assert said and close(json.loads(said[0]), json.loads(done.stdout)), (said, done.stdout)
        ran += 1
    return ran


def test_the_repository_walk_through_answers_as_documented(
    server: ServerFactory, tmp_path: Path
) -> None:
    """docs/repository.md: the demo bundles as a repository of two models with a budget of one,
    laid out and served as the page says, every ``curl`` to localhost:8070 in order."""
    registry = demo_registry(tmp_path / "demo" / "registry")
    page = (REPO_ROOT / "docs" / "repository.md").read_text()
    for source, name in re.findall(r"^cp -r demo/registry/(\S+) models/(\S+)$", page, re.M):
        shutil.copytree(registry / source, tmp_path / "models" / name)
    (served,) = re.findall(r"-m predictor (--model_repository models [^&]*?) --http_port", page)
    args = shlex.split(served.replace("models", str(tmp_path / "models"), 1))
    running = server.start(None, args=args)
    assert run_documented_curls("localhost:8070", running.http_port) == 4
