"""SIGTERM with 300 requests in flight loses none: with the defaults, and with the shipped settings.

"Lost" is a request whose connection was made and that got no answer (the connection closed or
reset under it). An answer must be the model's (200, equal to scikit-learn's) or a clean 503.
The defaults are what ``python -m predictor`` and ``docker run`` give; the shipped settings are
the environment of the ServingRuntime in ``manifests/runtimes/base``.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
import yaml
from sklearn.ensemble import RandomForestClassifier

from tests.helpers import REPO_ROOT, ServerFactory

pytestmark = pytest.mark.timeout(180)

X = np.random.default_rng(0).normal(size=(400, 20))


def shipped_env() -> dict[str, str]:
    runtime = yaml.safe_load(
        (REPO_ROOT / "manifests" / "runtimes" / "base" / "servingruntime.yaml").read_text()
    )
    container = runtime["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container.get("env", [])}


@pytest.fixture(scope="module")
def forest_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("forest") / "forest.joblib"
    joblib.dump(
        RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0).fit(X, X[:, 0] > 0),
        path,
    )
    return path


def flood_and_stop(url: str, process: Any, requests: int = 300) -> list[Any]:
    """Send ``requests`` at once, SIGTERM 0.1 s later, and say what became of each.

    The requests are sent but mostly not yet read when the signal comes: uvicorn's own shutdown
    closed those connections unanswered (all 300 lost), which is what this test is about.
    """

    async def flood() -> list[Any]:
        limits = httpx.Limits(max_connections=requests, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

            async def one(i: int) -> Any:
                try:
                    reply = await client.post(
                        "/v1/models/rf:predict", json={"instances": [X[i].tolist()]}
                    )
                    return reply.status_code, reply.json()
                except httpx.ConnectError:
                    return "not accepted"
                except httpx.HTTPError as e:
                    return f"lost: {type(e).__name__}"

            tasks = [asyncio.create_task(one(i)) for i in range(requests)]
            await asyncio.sleep(0.1)
            process.send_signal(signal.SIGTERM)
            return await asyncio.gather(*tasks)

    return asyncio.run(flood())


@pytest.mark.parametrize("settings", ["defaults", "shipped"])
def test_sigterm_with_300_in_flight_loses_none(
    server: ServerFactory, forest_file: Path, settings: str
) -> None:
    # scikit-learn's own predict and no batching: each request takes a few ms on the event loop,
    # so the 300 are still being read and answered when SIGTERM comes.
    env = shipped_env() if settings == "shipped" else {}
    running = server.start(
        str(forest_file), name="rf", env=env, args=["--fast_path", "false", "--batch_max_rows", "1"]
    )
    expected = joblib.load(forest_file).predict(X[:300]).tolist()
    outcomes = flood_and_stop(running.url, running.process)

    kinds = Counter(o[0] if isinstance(o, tuple) else o for o in outcomes)
    print(f"{settings}: {dict(kinds)}")  # the figures docs/operations.md quotes
    assert not [o for o in outcomes if isinstance(o, str)], dict(kinds)
    for i, (status, body) in enumerate(outcomes):
        assert status in (200, 503), body
        if status == 200:
            assert body["predictions"] == [expected[i]]
        else:
            assert body["error"].startswith(("server overloaded", "model rf is not ready"))
    assert running.process.wait(timeout=60) == 0
