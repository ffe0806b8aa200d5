"""Requests through the ASGI app in-process, for counting instructions under callgrind.

    PYTHONHASHSEED=0 valgrind --tool=callgrind python bench/instructions.py 1000 v1
    PYTHONHASHSEED=0 valgrind --tool=callgrind python bench/instructions.py 0 v1

The app is exactly what uvicorn serves (``tests.helpers.served_app``: the front door, the
endpoint, the model), fed one LogisticRegression row per request after 200 warm-up requests.
The difference of the two counts divided by N is the instructions one request costs, whatever
else the machine is doing. Run from the repository's root (or a checkout of another commit).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from typing import Any

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, os.getcwd())  # the checkout it is run from, not the installed one

from tests.helpers import served_app  # noqa: E402


def main() -> None:
    count, protocol = int(sys.argv[1]), sys.argv[2]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 20))
    folder = tempfile.mkdtemp(prefix="instructions-")
    joblib.dump(LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), f"{folder}/model.joblib")
    app = served_app(folder, name="lr")
    row = x[:1].round(6)
    path, body = {
        "v1": ("/v1/models/lr:predict", {"instances": row.tolist()}),
        "v2": (
            "/v2/models/lr/infer",
            {
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [1, 20],
                        "datatype": "FP64",
                        "data": row.ravel().tolist(),
                    }
                ]
            },
        ),
    }[protocol]
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]

    async def one() -> None:
        scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": raw, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope | {"query_string": b""}, receive, send)
        assert sent[0]["status"] == 200, sent

    async def run() -> None:
        for _ in range(200 + count):
            await one()

    asyncio.run(run())


if __name__ == "__main__":
    main()
