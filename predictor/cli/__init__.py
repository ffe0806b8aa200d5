"""What ``python -m predictor`` runs: serving, and the offline commands."""
