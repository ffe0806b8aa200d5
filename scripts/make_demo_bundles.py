"""Publish the demo bundles taxi/1.0.0 and taxi/1.1.0 into a local registry folder."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from predictor.demo import publish_demo_bundles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registry", type=Path, default=Path("demo/registry"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        for location in publish_demo_bundles(args.registry, Path(work)):
            print(f"published {location}")


if __name__ == "__main__":
    main()
