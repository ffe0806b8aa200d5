"""Explanations: per-feature contributions to a prediction, from the predictor that made it."""
