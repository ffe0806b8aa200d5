"""The offline commands: ``validate`` a model or bundle, ``publish`` a bundle.

Both run the server's own load-time checks and acceptance gate (``predictor.loading.loader``)
without importing the server. Each ends with its error's exit code: 0 done, 1 refused (the
model failed a check, or the version is already published), 2 could not run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from predictor.cli.flags import add_settings_flags, settings_from
from predictor.errors import ConfigError, PredictorError
from predictor.exits import run_command


def configure_logging() -> None:
    """One plain line per message on stderr (the server's logging belongs to KServe)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def validate(argv: Sequence[str]) -> int:
    """``validate URI``: every load-time check, no serving; prints the acceptance report."""
    parser = argparse.ArgumentParser(
        prog="python -m predictor validate", description=validate.__doc__
    )
    parser.add_argument("model_uri", help="a bundle or model file: gs://..., file://... or a path")
    add_settings_flags(
        parser,
        only=("model_sha256", "allow_version_skew", "download_dir", "store_deadline_seconds"),
    )
    parser.add_argument(
        "--copy-to", type=Path, help="copy the accepted model or bundle into this new folder"
    )
    args = parser.parse_args(argv)
    configure_logging()

    from predictor.loading.gate import load_accepted

    judged = False  # set once the settings are read: any refusal after is the model's verdict

    def work() -> None:
        nonlocal judged
        settings = settings_from(args)
        judged = True
        loaded = load_accepted(settings)
        print(
            f"ACCEPTED {args.model_uri}: version {loaded.version}, sha256 {loaded.artifact.sha256}"
        )
        print(loaded.acceptance.describe())
        if args.copy_to is not None:
            import shutil

            if loaded.manifest is not None:
                shutil.copytree(loaded.artifact.root, args.copy_to)
            else:
                args.copy_to.mkdir(parents=True)
                model_file = loaded.artifact.model_file
                shutil.copy2(model_file, args.copy_to / model_file.name)
            print(f"copied to {args.copy_to}")

    def say(error: PredictorError) -> None:
        if judged:  # the model's verdict goes to stdout, as ACCEPTED does
            print(f"REFUSED {args.model_uri}: {error}")
        else:
            print(f"predictor validate: {error}", file=sys.stderr)

    return run_command("predictor validate", work, say=say)


def publish(argv: Sequence[str]) -> int:
    """``publish``: build a bundle, accept it as the server would, and publish it immutably."""
    parser = argparse.ArgumentParser(
        prog="python -m predictor publish", description=publish.__doc__
    )
    parser.add_argument(
        "--model", required=True, type=Path, help="the .joblib/.pkl/.pickle (or .skops) file"
    )
    parser.add_argument(
        "--format",
        choices=("skops", "pickle"),
        help="the bundle's model file: skops (cannot run code when loaded; a .skops model's "
        "default) or pickle (a pickle's default)",
    )
    parser.add_argument("--name", required=True, help="model name (lowercase, digits, . _ -)")
    parser.add_argument("--version", required=True, help="model version, e.g. 1.4.0")
    parser.add_argument(
        "--to",
        required=True,
        help="a folder, gs://bucket/prefix or s3://bucket/prefix (<name>/<version>/ is added), "
        "or models:/NAME (a new version in MLflow's registry)",
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
        "--sample",
        type=Path,
        help="a CSV or Parquet sample of the input: its column names and types go in model.json",
    )
    parser.add_argument(
        "--code",
        type=Path,
        action="append",
        default=[],
        help="a Python module the pickle needs (repeat for several); shipped in the bundle",
    )
    parser.add_argument(
        "--metrics", type=Path, help='evaluation metrics to record: {"accuracy": 0.93, ...}'
    )
    args = parser.parse_args(argv)
    configure_logging()

    from predictor.publishing.publish import BundleSpec
    from predictor.publishing.publish import publish as publish_bundle

    def work() -> None:
        try:
            recorded = json.loads(args.metrics.read_text()) if args.metrics else {}
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read --metrics: {e}") from e
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
            sample_file=args.sample,
            code_files=tuple(args.code),
            metrics=recorded,
            format=args.format,
            **({"created_by": args.created_by} if args.created_by else {}),
        )
        print(publish_bundle(spec, args.to))

    return run_command("predictor publish", work)
