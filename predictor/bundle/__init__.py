"""Bundles.

The manifest and its schema, the sample, and publishing (staged, checked, written create-only to a
bucket or registered in MLflow).
"""
