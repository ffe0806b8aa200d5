"""Write the Grafana dashboard JSON that manifests/components/monitoring ships (make dashboard)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from predictor.monitoring.dashboard import dashboard

TARGET = Path(__file__).resolve().parent.parent / "manifests/components/monitoring/dashboard.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=TARGET)
    args = parser.parse_args()
    args.out.write_text(json.dumps(dashboard(), indent=2, sort_keys=True) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
