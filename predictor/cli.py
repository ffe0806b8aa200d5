"""What ``python -m predictor`` runs: serve a model, or ``validate`` / ``publish`` a bundle.

Serving (the default): every KServe ModelServer flag works as in KServe (``--http_port``,
``--grpc_port``, ``--workers``, ``--model_name``, ...); our settings come from ``PREDICTOR_*``
environment variables or the matching flags. A model that cannot be fetched, trusted, loaded or
accepted ends start-up with one line on stderr and exit status 2: it never becomes ready.

``validate URI`` runs the same checks without serving (exit 0 accepted, 1 refused, 2 usage).
``publish --model FILE --name N --version V ... --to DEST`` builds, accepts and publishes a bundle
(exit 0 published, 1 refused or already published, 2 usage).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from predictor import __version__
from predictor.errors import PortInUseError, PredictorError
from predictor.logs import configure_logging

logger = logging.getLogger("predictor")

EXIT_CANNOT_SERVE = 2
EXIT_REFUSED = 1
EXIT_USAGE = 2
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
    ours.add_argument(
        "--fast_path", type=_boolean, help="serve with a verified compiled model (true)"
    )
    ours.add_argument("--batch_max_rows", type=int, help="rows one batched model call may combine")
    ours.add_argument("--batch_max_wait_ms", type=float, help="wait for company before a call (0)")
    ours.add_argument("--cache_size", type=int, help="prediction cache entries (0: off)")
    ours.add_argument("--max_in_flight", type=int, help="more requests at once get 503 (256)")
    ours.add_argument("--shutdown_delay_seconds", type=float, help="drain time after SIGTERM (0)")
    ours.add_argument("--access_log", type=_boolean, help="one log line per request (false)")
    ours.add_argument("--version", action="version", version=f"predictor {__version__}")
    return parser


def _boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def serve(argv: Sequence[str]) -> int:
    """Parse flags, load the model and serve it until stopped; returns the exit status."""
    gc.disable()  # for start-up, as ``predictor.__main__`` does; back on below, before serving
    args = build_parser().parse_args(argv)
    # KServe's own routes use a response class FastAPI now deprecates; not ours to fix, and a
    # warning in the serving log would only be noise.
    warnings.filterwarnings("ignore", message=".*ORJSONResponse is deprecated.*")

    from predictor.config import load_settings
    from predictor.model import SklearnModel
    from predictor.server import PredictorServer, RestOptions

    try:
        settings = load_settings(
            {
                "model_uri": args.model_uri,
                "model_sha256": args.model_sha256,
                "download_dir": args.download_dir,
                "max_body_bytes": args.max_body_bytes,
                "gcs_deadline_seconds": args.gcs_deadline_seconds,
                "allow_version_skew": args.allow_version_skew,
                "fast_path": args.fast_path,
                "batch_max_rows": args.batch_max_rows,
                "batch_max_wait_ms": args.batch_max_wait_ms,
                "cache_size": args.cache_size,
                "access_log": args.access_log,
                "max_in_flight": args.max_in_flight,
                "shutdown_delay_seconds": args.shutdown_delay_seconds,
            }
        )
    except PredictorError as e:
        print(f"predictor: cannot serve model {args.model_name!r}: {e}", file=sys.stderr)
        return EXIT_CANNOT_SERVE
    if args.configure_logging:
        configure_logging(args.log_config_file, access_log=settings.access_log)
    try:
        model = SklearnModel(args.model_name, settings=settings)
        model.load()
    except PredictorError as e:
        return refuse_to_serve(args.model_name, e)

    server = PredictorServer(
        options=RestOptions(
            max_body_bytes=settings.max_body_bytes,
            access_log=settings.access_log,
            shutdown_delay_s=settings.shutdown_delay_seconds,
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
    # Everything loaded so far lives as long as the process: move it out of the collector's way so
    # that full collections, which would walk the whole heap (pandas, scikit-learn, the model), stay
    # short under load.
    gc.freeze()
    gc.enable()
    try:
        server.start([model])
    except PortInUseError as e:
        return refuse_to_serve(args.model_name, e)
    return 0


def refuse_to_serve(model_name: str, error: PredictorError) -> int:
    """Say why the model will not be served (in the log, and in one line on stderr)."""
    logger.error("cannot serve model %r: %s", model_name, error)
    print(f"predictor: cannot serve model {model_name!r}: {error}", file=sys.stderr)
    return EXIT_CANNOT_SERVE


def validate(argv: Sequence[str]) -> int:
    """``validate URI``: every load-time check, no serving; prints the acceptance report."""
    parser = argparse.ArgumentParser(
        prog="python -m predictor validate", description=validate.__doc__
    )
    parser.add_argument("model_uri", help="a bundle or model file: gs://..., file://... or a path")
    parser.add_argument("--model_sha256", help="sha256 the model file must match")
    parser.add_argument("--allow_version_skew", action="store_const", const=True)
    parser.add_argument(
        "--copy-to", type=Path, help="copy the accepted model or bundle into this new folder"
    )
    args = parser.parse_args(argv)
    configure_logging(None)

    from predictor.config import load_settings
    from predictor.model import SklearnModel

    try:
        settings = load_settings(
            {
                "model_uri": args.model_uri,
                "model_sha256": args.model_sha256,
                "allow_version_skew": args.allow_version_skew,
            }
        )
    except PredictorError as e:
        print(f"predictor validate: {e}", file=sys.stderr)
        return EXIT_USAGE
    model = SklearnModel("validate", settings=settings)
    try:
        model.load()
    except PredictorError as e:
        print(f"REFUSED {args.model_uri}: {e}")
        return EXIT_REFUSED
    loaded = model.loaded
    print(f"ACCEPTED {args.model_uri}: version {loaded.version}, sha256 {loaded.artifact.sha256}")
    print(loaded.acceptance.describe())
    if args.copy_to is not None:
        import shutil

        if loaded.manifest is not None:
            shutil.copytree(loaded.artifact.root, args.copy_to)
        else:
            args.copy_to.mkdir(parents=True)
            shutil.copy2(loaded.artifact.model_file, args.copy_to / loaded.artifact.model_file.name)
        print(f"copied to {args.copy_to}")
    return 0


def publish(argv: Sequence[str]) -> int:
    """``publish``: build a bundle, accept it as the server would, and publish it immutably."""
    parser = argparse.ArgumentParser(
        prog="python -m predictor publish", description=publish.__doc__
    )
    parser.add_argument("--model", required=True, type=Path, help="the .joblib/.pkl/.pickle file")
    parser.add_argument("--name", required=True, help="model name (lowercase, digits, . _ -)")
    parser.add_argument("--version", required=True, help="model version, e.g. 1.4.0")
    parser.add_argument(
        "--to", required=True, help="a folder or gs://bucket/prefix; <name>/<version>/ is added"
    )
    parser.add_argument(
        "--e2e", type=Path, help='end-to-end set: {"instances": [...], "expected"?: {...}}'
    )
    parser.add_argument(
        "--atol", type=float, default=1e-6, help="tolerance for probabilities and regression"
    )
    parser.add_argument(
        "--confidence", type=Path, help='labelled set: {"instances": [...], "labels": [...]}'
    )
    parser.add_argument(
        "--metric",
        help="accuracy, balanced_accuracy, f1, precision, recall, roc_auc, log_loss, rmse, mae, r2",
    )
    parser.add_argument("--min", type=float, dest="minimum", help="lowest acceptable metric value")
    parser.add_argument("--max", type=float, dest="maximum", help="highest acceptable metric value")
    parser.add_argument("--created-by", help="who publishes (default: the current user)")
    parser.add_argument("--training-data-uri")
    parser.add_argument("--training-data-version")
    parser.add_argument("--feature-extractor-version")
    parser.add_argument(
        "--string-features", default="", help="comma-separated features that are strings"
    )
    parser.add_argument(
        "--metrics", type=Path, help='evaluation metrics to record: {"accuracy": 0.93, ...}'
    )
    args = parser.parse_args(argv)
    configure_logging(None)

    from predictor.publish import BundleSpec
    from predictor.publish import publish as publish_bundle

    try:
        recorded = json.loads(args.metrics.read_text()) if args.metrics else {}
    except (OSError, ValueError) as e:
        print(f"predictor publish: cannot read --metrics: {e}", file=sys.stderr)
        return EXIT_USAGE
    spec = BundleSpec(
        model_file=args.model,
        name=args.name,
        version=args.version,
        e2e_file=args.e2e,
        atol=args.atol,
        confidence_file=args.confidence,
        metric=args.metric,
        minimum=args.minimum,
        maximum=args.maximum,
        training_data_uri=args.training_data_uri,
        training_data_version=args.training_data_version,
        feature_extractor_version=args.feature_extractor_version,
        string_features=tuple(f for f in args.string_features.split(",") if f),
        metrics=recorded,
        **({"created_by": args.created_by} if args.created_by else {}),
    )
    try:
        uri = publish_bundle(spec, args.to)
    except PredictorError as e:
        print(f"predictor publish: {e}", file=sys.stderr)
        return EXIT_REFUSED
    print(uri)
    return 0


COMMANDS = {"validate": validate, "publish": publish}


def main(argv: Sequence[str]) -> int:
    """Entry point: ``validate``, ``publish``, or serving (the default).

    ``predictor.__main__`` has already switched the cyclic garbage collector off for start-up;
    serving turns it back on before it serves, the other commands at once.
    """
    args = list(argv)
    if args and args[0] in COMMANDS:
        gc.enable()
        return COMMANDS[args[0]](args[1:])
    return serve(args)
