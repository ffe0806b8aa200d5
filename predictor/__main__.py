"""``python -m predictor``: read settings, load and check the model, then serve it.

Every KServe ModelServer flag works as in KServe (``--http_port``, ``--grpc_port``,
``--workers``, ``--model_name``, ...). Our settings come from ``PREDICTOR_*`` environment
variables or the matching flags below. A model that cannot be fetched, trusted or loaded ends
start-up with one line on stderr and exit status 2: it never becomes ready.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from collections.abc import Sequence
from typing import Any

from predictor import __version__
from predictor.errors import PredictorError

logger = logging.getLogger("predictor")

EXIT_CANNOT_SERVE = 2


def build_parser() -> argparse.ArgumentParser:
    """KServe's own flags plus ours; ours default to None so the environment can supply them."""
    from kserve.model_server import parser as kserve_parser

    parser = argparse.ArgumentParser(
        prog="python -m predictor",
        description="Serve a scikit-learn model over KServe v1 and v2 (REST and gRPC).",
        parents=[kserve_parser],
    )
    ours = parser.add_argument_group("predictor (each also PREDICTOR_<NAME> in the environment)")
    ours.add_argument(
        "--model_uri", help="gs://bucket/path, gs://bucket/prefix/, file:///path or a path"
    )
    ours.add_argument("--model_sha256", help="sha256 the model file must match before it is loaded")
    ours.add_argument("--download_dir", help="where gs:// models are downloaded")
    ours.add_argument("--max_body_bytes", type=int, help="413 above this request size")
    ours.add_argument("--gcs_deadline_seconds", type=float, help="total GCS retry budget")
    ours.add_argument(
        "--allow_version_skew",
        action="store_const",
        const=True,
        help="serve a model saved by another scikit-learn version",
    )
    ours.add_argument("--version", action="version", version=f"predictor {__version__}")
    return parser


def configure_logging(log_config_file: str | None) -> None:
    """KServe's logging set-up, with our ``predictor`` loggers on KServe's handler."""
    from kserve import logging as kserve_logging

    if log_config_file:
        kserve_logging.configure_logging(log_config_file)
        return
    config: dict[str, Any] = copy.deepcopy(kserve_logging.KSERVE_LOG_CONFIG)
    level = config["loggers"]["kserve"]["level"]
    config["loggers"]["predictor"] = {"handlers": ["kserve"], "level": level, "propagate": False}
    kserve_logging.configure_logging(config)


def serve(argv: Sequence[str]) -> int:
    """Parse flags, load the model and serve it until stopped; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.configure_logging:
        configure_logging(args.log_config_file)

    from predictor.config import load_settings
    from predictor.model import SklearnModel
    from predictor.server import PredictorServer

    try:
        settings = load_settings(
            {
                "model_uri": args.model_uri,
                "model_sha256": args.model_sha256,
                "download_dir": args.download_dir,
                "max_body_bytes": args.max_body_bytes,
                "gcs_deadline_seconds": args.gcs_deadline_seconds,
                "allow_version_skew": args.allow_version_skew,
            }
        )
        model = SklearnModel(args.model_name, settings=settings)
        model.load()
    except PredictorError as e:
        logger.error("cannot serve model %r: %s", args.model_name, e)
        print(f"predictor: cannot serve model {args.model_name!r}: {e}", file=sys.stderr)
        return EXIT_CANNOT_SERVE

    server = PredictorServer(
        max_body_bytes=settings.max_body_bytes,
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
    server.start([model])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``serve`` (the default)."""
    return serve(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
