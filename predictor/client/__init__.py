"""Calling a deployed predictor: bodies and tables (``shapes``), transports (``endpoint``)."""
