"""A KServe predictor for scikit-learn models kept in Google Cloud Storage or on local disk."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kserve-sklearn-predictor")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
