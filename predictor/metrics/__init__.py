"""Metrics: every series defined in ``series``, recorded through ``record`` and ``handles``."""
