"""A real Prometheus server (Debian's ``prometheus``) scraping predictors every second."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.helpers import free_port
from tests.stores import Process


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail(
            "prometheus is not installed; `make test` installs it (apt-get install prometheus)"
        )
    return found


@contextlib.contextmanager
def running_prometheus(ports: Sequence[int], folder: Path) -> Iterator[str]:
    """Prometheus scraping ``127.0.0.1:<port>/metrics`` for each port; yields its URL."""
    port = free_port()
    targets = ", ".join(f"'127.0.0.1:{p}'" for p in ports)
    config = folder / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs: [{{job_name: predictors, static_configs: [{{targets: [{targets}]}}]}}]\n"
    )
    command = [
        prometheus_binary(),
        f"--config.file={config}",
        f"--storage.tsdb.path={folder / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    server = Process(command, folder / "prometheus.log", {}, port)
    try:
        server.wait_ready("/-/ready", timeout=30)
        yield server.url
    finally:
        server.stop()
