"""A/B of two versions of the predictor: the same cells, the two servers taking turns on core 0.

    python bench/ab.py --old REF [--new predictor] [--models lr] [--rounds 5] [--duration 3]
    python bench/ab.py --old-kind predictor --new predictor+shadow --models lr,rf

``--old`` is a git commit (served from a copy of its tree, ``predictor@REF``), or ``--old-kind``
a server kind; ``--new`` is ``predictor`` (this checkout), another ``predictor@REF``, or
``predictor+shadow`` (this checkout with the same model as its shadow: the shadow's cost). Both run at once, idle but for the
one under load, and alternate per sample; the table shows each one's median and new/old.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from run import measure_cell
from servers import make_models, start_server

CELLS = [(p, rows, 32) for p in ("v1", "v2", "grpc") for rows in (1, 64)] + [("v2", 1, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--old", help="git commit of the old version (served as predictor@REF)")
    parser.add_argument("--old-kind", help="or a server kind of bench/servers.py, e.g. predictor")
    parser.add_argument(
        "--new",
        default="predictor",
        help="predictor, predictor@REF, predictor+shadow or predictor+repository",
    )
    parser.add_argument("--models", default="lr")
    parser.add_argument(
        "--bare",
        action="store_true",
        help="serve the bare model file, not its bundle (old commits)",
    )
    parser.add_argument("--cells", default="", help="only these, e.g. v2:64:32,grpc:64:32")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args()
    for tool in ("taskset", "wrk", "h2load", "git"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (make bench installs wrk and h2load)")
    if (args.old is None) == (args.old_kind is None):
        sys.exit("give --old REF or --old-kind KIND")
    old, new = args.old_kind or f"predictor@{args.old}", args.new
    if old == new:  # the samples are kept by kind: two servers of one kind would be one
        sys.exit(
            f"old and new are both {old}; for an A/A control, use --old <a commit of this code>"
        )
    print("| model | proto | rows | c | old req/s | new req/s | new/old |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        work = Path(tmp)
        paths = make_models(work / "models")
        for model in args.models.split(","):
            running = [
                start_server(kind, model, paths, work, bare=args.bare) for kind in (old, new)
            ]
            wanted = [
                tuple(int(x) if x.isdigit() else x for x in c.split(":"))
                for c in args.cells.split(",")
                if c
            ]
            try:
                for spec in [c for c in CELLS if not wanted or c in wanted]:
                    cells = {
                        c.server: c
                        for c in measure_cell(running, spec, args.duration, args.rounds, work)
                    }
                    a, b = cells[old], cells[new]
                    print(
                        f"| {model} | {spec[0]} | {spec[1]} | {spec[2]} | {a.rps:,.0f} | "
                        f"{b.rps:,.0f} | {b.rps / a.rps:.3f} |",
                        flush=True,
                    )
            finally:
                for server in running:
                    server.stop()


if __name__ == "__main__":
    main()
