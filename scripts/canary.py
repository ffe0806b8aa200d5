"""Canary rollouts for an InferenceService: start, status, set, promote, rollback, auto.

    python scripts/canary.py start taxi --model-uri gs://models/registry/taxi/1.1.0/ --percent 10
    python scripts/canary.py auto taxi --steps 10,25,50,100 --interval 2m --analysis analysis.yaml

See the README ("Canary rollouts") for the analysis file and exit codes.
"""

from __future__ import annotations

import sys

from predictor.rollout.cli import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
