"""The benchmark as a picture: requests per second per cell for each server, one PNG.

    python bench/chart.py [bench/results/latest.json] [bench/chart.png]

``run.py`` draws it after every run; this redraws it from a saved run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ORDER = ("empty", "predictor", "mlserver-batch", "mlserver", "baseline")
COLOURS = {
    "empty": "#bbbbbb",
    "predictor": "#1f77b4",
    "mlserver-batch": "#ff7f0e",
    "mlserver": "#ffbb78",
    "baseline": "#2ca02c",
}
LABELS = {
    "empty": "empty server (transport ceiling)",
    "predictor": "this predictor",
    "mlserver-batch": "MLServer, adaptive batching",
    "mlserver": "MLServer",
    "baseline": "plain kserve.Model",
}


def draw(cells: list[dict[str, Any]], out: Path, *, title: str = "") -> None:
    """A grouped bar chart, log scale: one group per cell at c=32, one bar per server."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_key = {
        (c["server"], c["model"], c["protocol"], c["rows"], c["concurrency"]): c for c in cells
    }
    groups = sorted(
        {(m, p, r, k) for (_, m, p, r, k) in by_key if k == 32},
        key=lambda g: (g[0], ("v1", "v2", "grpc").index(g[1]), g[2]),
    )
    servers = [s for s in ORDER if any(key[0] == s for key in by_key)]
    width = 0.8 / max(len(servers), 1)
    figure, axes = plt.subplots(figsize=(max(8, 1.1 * len(groups)), 5.2), dpi=110)
    for i, server in enumerate(servers):
        xs, ys = [], []
        for j, (model, protocol, rows, concurrency) in enumerate(groups):
            cell = by_key.get((server, model, protocol, rows, concurrency))
            if cell is not None and cell["rps"] > 0:
                xs.append(j + (i - (len(servers) - 1) / 2) * width)
                ys.append(cell["rps"])
        axes.bar(xs, ys, width, label=LABELS.get(server, server), color=COLOURS.get(server))
    axes.set_yscale("log")
    axes.set_ylabel("requests per second (log scale)")
    axes.set_xticks(range(len(groups)))
    axes.set_xticklabels([f"{m.upper()}\n{p} {r} row{'s' * (r > 1)}" for m, p, r, _ in groups])
    axes.grid(axis="y", which="both", alpha=0.3)
    axes.set_axisbelow(True)
    axes.legend(
        fontsize="small", ncol=len(servers), loc="upper center", bbox_to_anchor=(0.5, -0.14)
    )
    axes.set_title(title or "Requests per second at 32 concurrent requests, server on one core")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench/results/latest.json")
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("bench/chart.png")
    draw(json.loads(source.read_text())["cells"], out)
    print(out)


if __name__ == "__main__":
    main()
