"""``python -m predictor call URL --model NAME``: call a deployed InferenceService.

As KServe's docs do with curl: the ingress address as URL, the service's host name as ``--host``
(``scripts/canary.py url NAME`` prints both), a bearer token for authenticated gateways. Rows come
from ``--json FILE`` (a list of rows, or a v1 body), ``--csv FILE`` (with a header) or
``--instances '[[...]]'``. The answer is printed as a table (``--format csv`` for CSV); an error
answer is printed in the server's own words. Exit 0 answered, 1 the server answered with an
error, 2 the call could not be made.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from predictor.errors import CallError
from predictor.exits import run_command


def call(argv: Sequence[str]) -> int:
    """``call``: send rows to a deployed model and print what it answers."""
    parser = argparse.ArgumentParser(prog="python -m predictor call", description=__doc__)
    parser.add_argument(
        "url", help="the address to call: http(s)://ingress[:port] (grpc: host:port)"
    )
    parser.add_argument("--model", required=True, help="the model's name (the InferenceService's)")
    parser.add_argument("--host", help="the Host header (taxi.default.example.com)")
    parser.add_argument("--protocol", choices=("v1", "v2", "grpc"), default="v1")
    rows = parser.add_mutually_exclusive_group(required=True)
    rows.add_argument("--json", type=Path, help="a JSON file of rows, or a v1 body")
    rows.add_argument("--csv", type=Path, help="a CSV file with a header row")
    rows.add_argument("--instances", help="the rows as JSON, e.g. '[[1, 2.5, 3]]'")
    parser.add_argument("--outputs", default="", help="comma-separated: predict,predict_proba,...")
    parser.add_argument(
        "--id_column",
        help="a column of the rows that names each one: not sent, printed first beside its answer",
    )
    parser.add_argument("--token", help="a bearer token for the gateway")
    parser.add_argument("--format", choices=("table", "csv"), default="table", dest="style")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    args = parser.parse_args(argv)

    from predictor.client.endpoint import Endpoint
    from predictor.client.endpoint import call as call_endpoint
    from predictor.client.shapes import render, rows_from_csv, rows_from_json, split_ids

    def work() -> None:
        if args.instances is not None:
            found = rows_from_json(args.instances)
        else:
            path = args.json or args.csv
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as e:
                raise CallError(f"cannot read {path}: {e.strerror}") from e
            found = rows_from_csv(text) if args.csv else rows_from_json(text)
        endpoint = Endpoint(
            url=args.url, model=args.model, host=args.host, token=args.token, timeout_s=args.timeout
        )
        outputs = [o for o in args.outputs.split(",") if o]
        ids, found = split_ids(found, args.id_column) if args.id_column else (None, found)
        header, table = call_endpoint(endpoint, args.protocol, found, outputs)
        if ids is not None:
            header, table = (
                [args.id_column, *header],
                [[i, *r] for i, r in zip(ids, table, strict=True)],
            )
        sys.stdout.write(render(header, table, args.style))

    return run_command("predictor call", work)
