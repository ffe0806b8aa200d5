"""Write the demo taxi-trip model (a fixed-seed GradientBoostingClassifier) to a folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from predictor.demo import save_demo_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo/model"), help="output folder")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    path = save_demo_model(args.out, seed=args.seed)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
