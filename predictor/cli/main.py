"""What ``python -m predictor`` runs: serving, or one of the offline commands.

The offline commands are ``validate`` and ``publish`` (a bundle), ``score`` (files of rows),
``drift-report`` (a file against the model's reference), ``shadow-report`` (prediction logs)
and ``call`` (a deployed InferenceService).

Serving (the default): every KServe ModelServer flag works as in KServe (``--http_port``,
``--grpc_port``, ``--workers``, ``--model_name``, ...); our settings come from ``PREDICTOR_*``
environment variables or the matching flags. A model that cannot be served ends start-up with
one line on stderr and the error's exit code: 1 when it was refused by its checks (digest, version
skew, acceptance), 2 when it could not be served at all. It never becomes ready.

``validate`` and ``publish`` are in ``predictor.cli.offline``, ``score`` in ``predictor.cli.score``;
they import no server.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import warnings
from collections.abc import Sequence

from predictor import __version__
from predictor.cli.call import call
from predictor.cli.flags import add_settings_flags, settings_from
from predictor.cli.offline import publish, validate
from predictor.cli.score import drift_report, score
from predictor.cli.shadow_report import shadow_report
from predictor.errors import PredictorError
from predictor.exits import run_command

logger = logging.getLogger("predictor")

GRPC_THREADS = 8
"""Default of KServe's ``--max_threads``: the threads that answer gRPC calls."""


def build_parser() -> argparse.ArgumentParser:
    """KServe's own flags plus ours; ours default to None so the environment can supply them."""
    from kserve.model_server import parser as kserve_parser

    parser = argparse.ArgumentParser(
        prog="python -m predictor",
        description="Serve a scikit-learn model over KServe v1 and v2 (REST and gRPC).",
        parents=[kserve_parser],
    )
    # KServe's --max_threads (4) sizes the thread pool that answers gRPC. Ours answers inference
    # on those threads: with 8, more calls are in hand at once, which carried 3-7% more 64-row
    # calls per second on one core in three back-to-back runs, and no fewer in the other cells.
    parser.set_defaults(max_threads=GRPC_THREADS)
    add_settings_flags(parser)
    parser.add_argument("--version", action="version", version=f"predictor {__version__}")
    return parser


def serve(argv: Sequence[str]) -> int:
    """Parse flags, load the model and serve it until stopped; returns the exit status."""
    gc.disable()  # for start-up, as ``predictor.__main__`` does; back on below, before serving
    args = build_parser().parse_args(argv)
    # KServe's own routes use a response class FastAPI now deprecates; not ours to fix, and a
    # warning in the serving log would only be noise.
    warnings.filterwarnings("ignore", message=".*ORJSONResponse is deprecated.*")

    from predictor.server.logs import configure_logging
    from predictor.server.model_server import PredictorServer, RestOptions
    from predictor.server.model_store import to_serve

    logged = False  # whether logging is configured (a settings error comes before it)

    def work() -> None:
        nonlocal logged
        settings = settings_from(args)
        if args.configure_logging:
            configure_logging(args.log_config_file, access_log=settings.access_log)
        logged = True
        models, store = to_serve(settings, name=args.model_name, workers=args.workers)
        server = PredictorServer(
            registered_models=store,
            options=RestOptions(
                max_body_bytes=settings.max_body_bytes,
                access_log=settings.access_log,
                shutdown_delay_s=settings.shutdown_delay_seconds,
                shutdown_quiet_s=settings.shutdown_quiet_seconds,
                docs_url=settings.docs_url,
            ),
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            workers=args.workers,
            max_threads=args.max_threads,
            max_asyncio_workers=args.max_asyncio_workers,
            enable_grpc=args.enable_grpc,
            enable_docs_url=args.enable_docs_url,
            enable_latency_logging=args.enable_latency_logging,
            access_log_format=args.access_log_format,
            event_loop=args.event_loop,
            timeout_keep_alive=args.timeout_keep_alive,
        )
        # Everything loaded so far lives as long as the process: move it out of the collector's
        # way so that full collections, which would walk the whole heap (pandas, scikit-learn,
        # the model), stay short under load.
        gc.freeze()
        gc.enable()
        server.start(models)

    def say(error: PredictorError) -> None:
        if logged:
            logger.error("cannot serve model %r: %s", args.model_name, error)
        print(f"predictor: cannot serve model {args.model_name!r}: {error}", file=sys.stderr)

    return run_command("predictor", work, say=say)


COMMANDS = {
    "call": call,
    "drift-report": drift_report,
    "validate": validate,
    "publish": publish,
    "score": score,
    "shadow-report": shadow_report,
}
"""The offline commands; anything else serves."""


def main(argv: Sequence[str]) -> int:
    """Entry point: ``validate``, ``publish``, ``score``, or serving (the default).

    ``predictor.__main__`` has already switched the cyclic garbage collector off for start-up;
    serving turns it back on before it serves, the other commands at once.
    """
    args = list(argv)
    if args and args[0] in COMMANDS:
        gc.enable()
        return COMMANDS[args[0]](args[1:])
    return serve(args)
