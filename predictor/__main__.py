"""``python -m predictor``: what must happen before the first heavy import, then the CLI.

- The cyclic garbage collector is switched off. Start-up (imports, unpickling) allocates much and
  frees little, and the collector would run hundreds of times for nothing (about a fifth of
  start-up). ``cli.serve`` turns it back on before serving, with everything loaded frozen out of
  its way; the other commands turn it back on at once.
- With ``--workers`` above 1, ``PROMETHEUS_MULTIPROC_DIR`` is set before prometheus_client is
  imported (it reads the variable once, at import). The main process, which loads the model and
  answers gRPC, then writes its metrics where the REST workers' ``/metrics`` reads them.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
from collections.abc import Sequence


def prepare_multiprocess_metrics(argv: Sequence[str]) -> None:
    """With several uvicorn workers, share metrics through files (before prometheus is imported)."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--workers", type=int, default=1)
    known, _ = early.parse_known_args(argv)
    if known.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="predictor-metrics-")


def run(argv: Sequence[str]) -> int:
    """Prepare the process, then hand over to ``predictor.cli.main``."""
    gc.disable()
    prepare_multiprocess_metrics(argv)
    from predictor.cli.main import main  # the first heavy import (KServe, scikit-learn)

    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
