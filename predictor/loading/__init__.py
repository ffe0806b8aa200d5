"""Loading a model the safe way.

Fetch, verify, unpickle (or open an MLflow folder), choose its engine, and run the acceptance gate
before it may serve.
"""
