"""Building the estimator from a verified model file: joblib for pickles, skops for skops files.

Every failure becomes a one-line ``ArtifactError``. scikit-learn's ``InconsistentVersionWarning``
(or, for MLflow's skops files, the version MLflow recorded) refuses the model unless skew is
allowed. ``refuse_code`` is ``--allow_pickle false``: a pickle, or a bundle's own Python modules,
is refused before anything of it runs.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from typing import Any

import joblib
from sklearn.exceptions import InconsistentVersionWarning

from predictor.bundle.manifest import check_compatibility, runtime_versions
from predictor.errors import IncompatibleModelError, ModelFileError, PickleRefusedError
from predictor.loading import skops_files
from predictor.loading.mlmodel import MLflowModel, load_skops
from predictor.loading.tree_bounds import check_trees
from predictor.stores.fetch import FetchedModel

logger = logging.getLogger(__name__)


def is_skops(artifact: FetchedModel, mlflow_model: MLflowModel | None) -> bool:
    """Whether the model file is a skops file (which builds only trusted types)."""
    if mlflow_model is not None:
        return mlflow_model.serialization_format == "skops"
    return artifact.model_file.suffix == skops_files.SKOPS_SUFFIX


def refuse_code(
    artifact: FetchedModel, mlflow_model: MLflowModel | None, *, ships_code: bool
) -> None:
    """Refuse a model whose loading would run code of its own (``--allow_pickle false``).

    Raises:
        PickleRefusedError: the file is a pickle, or the bundle ships Python modules.
    """
    name = artifact.model_file.name
    if not is_skops(artifact, mlflow_model):
        raise PickleRefusedError(
            f"{name} is a pickle, and allow_pickle is false: loading a pickle runs code. "
            "Convert it with `python -m predictor publish --format skops`"
        )
    if ships_code:
        raise PickleRefusedError(
            f"the bundle of {name} ships Python modules (code/), and allow_pickle is false: "
            "they would run when the model is built"
        )


def unpickle(
    artifact: FetchedModel,
    *,
    allow_version_skew: bool,
    mlflow_model: MLflowModel | None = None,
    trusted_types: tuple[str, ...] | None = None,
) -> Any:
    """Load the model file, turning every failure into a one-line ArtifactError.

    Pickles and cloudpickles load with joblib. Skops files load with skops: MLflow's trusting
    the types their MLmodel lists, a bundle's exactly ``trusted_types`` (its manifest's), a bare
    one with ``skops_files``' default trust.
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
            elif trusted_types is not None:
                estimator = skops_files.load_trusting(artifact.model_file, trusted_types)
            elif is_skops(artifact, mlflow_model):
                estimator = skops_files.load_bare(artifact.model_file)
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
    if is_skops(artifact, mlflow_model):  # built from trusted types, yet its trees may lie
        check_trees(estimator, source=artifact.model_file.name)
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
