r"""The file ``spark-submit`` runs: ``score --engine spark`` on the session spark-submit made.

    spark-submit --master yarn "$(python -m predictor.cli.spark_submit --path)" --model_uri \
        gs://models/registry/taxi/1.4.0/ --input gs://lake/in/ --output gs://lake/out/

Every argument after the file is ``score``'s (``--engine spark`` is implied); the master, the
executors and their memory are spark-submit's.
"""

from __future__ import annotations

import sys

from predictor.cli.score import score


def main() -> int:
    """Run ``score --engine spark`` with this process's arguments (``--path``: print this file)."""
    if sys.argv[1:] == ["--path"]:
        print(__file__)
        return 0
    return score(["--engine", "spark", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
