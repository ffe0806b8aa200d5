"""Unpickling a verified model file: joblib for pickles, skops for MLflow's skops format.

Every failure becomes a one-line ``ArtifactError``. scikit-learn's ``InconsistentVersionWarning``
(or, for skops files, the version MLflow recorded) refuses the model unless skew is allowed.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from typing import Any

import joblib
from sklearn.exceptions import InconsistentVersionWarning

from predictor.bundle.manifest import check_compatibility, runtime_versions
from predictor.errors import IncompatibleModelError, ModelFileError
from predictor.loading.mlmodel import MLflowModel, load_skops
from predictor.stores.fetch import FetchedModel

logger = logging.getLogger(__name__)


def unpickle(
    artifact: FetchedModel, *, allow_version_skew: bool, mlflow_model: MLflowModel | None = None
) -> Any:
    """Load the model file, turning every failure into a one-line ArtifactError.

    Pickles and cloudpickles load with joblib; MLflow's skops files with skops, trusting the
    types their MLmodel lists.
    """
    if mlflow_model is not None and mlflow_model.sklearn_version is not None:
        for skew in check_compatibility(
            {"scikit-learn": mlflow_model.sklearn_version},
            runtime_versions(),
            allow_skew=allow_version_skew,
        ):
            logger.warning("version skew: %s", skew)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InconsistentVersionWarning)
        try:
            if mlflow_model is not None and mlflow_model.serialization_format == "skops":
                estimator = load_skops(mlflow_model)
            else:
                estimator = joblib.load(artifact.model_file)
        except ModuleNotFoundError as e:
            raise ModelFileError(
                f"{artifact.model_file.name} needs the Python module {e.name!r}, which is not "
                "installed here: install it in the image, or ship it in the bundle "
                "(publish --code FILE.py)"
            ) from e
        except (
            pickle.UnpicklingError,
            EOFError,
            ValueError,
            KeyError,
            IndexError,
            AttributeError,
            ImportError,
            TypeError,
        ) as e:
            raise ModelFileError(
                f"{artifact.model_file.name} does not load: {type(e).__name__}: {_first_line(e)}"
            ) from e
    for warning in caught:
        if issubclass(warning.category, InconsistentVersionWarning):
            message = _first_line(warning.message)
            if not allow_version_skew:
                raise IncompatibleModelError(
                    f"{artifact.model_file.name}: {message}; retrain or re-save the model with "
                    "this scikit-learn, or set PREDICTOR_ALLOW_VERSION_SKEW=true to accept the risk"
                )
            logger.warning("version skew allowed: %s", message)
        else:
            logger.warning(
                "while loading %s: %s", artifact.model_file.name, _first_line(warning.message)
            )
    return estimator


def _first_line(value: object) -> str:
    text = str(value).strip().splitlines()
    return text[0][:300] if text else ""
