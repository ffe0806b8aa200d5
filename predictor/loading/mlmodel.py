"""MLflow's model folder (``MLmodel``): which file holds the estimator, and how it was saved.

``mlflow.sklearn.log_model`` writes the estimator in one of three formats, recorded in the
``sklearn`` flavor of ``MLmodel``: ``skops`` (MLflow's default outside Databricks), ``pickle``
and ``cloudpickle``. The folder is served as it is, wherever it comes from (``models:/``, a
bucket prefix, or KServe's storage initializer); this module only reads the description.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from predictor.errors import ModelFileError

MLMODEL = "MLmodel"
"""The file that makes a folder an MLflow model."""

FORMATS = ("pickle", "cloudpickle", "skops")


@dataclass(frozen=True)
class MLflowModel:
    """The sklearn flavor of an MLflow model folder."""

    model_file: Path
    serialization_format: str
    skops_trusted_types: tuple[str, ...]
    sklearn_version: str | None
    run_id: str | None

    def lineage(self) -> dict[str, str]:
        """Scalar lineage for v2 metadata parameters and the home page."""
        fields = {
            "mlflow_format": self.serialization_format,
            "mlflow_run_id": self.run_id,
            "saved_with_sklearn": self.sklearn_version,
        }
        return {k: v for k, v in fields.items() if v}


def read_mlmodel(folder: Path) -> MLflowModel | None:
    """The sklearn flavor described by ``folder/MLmodel``, or None when there is no MLmodel.

    Raises:
        ModelFileError: the MLmodel file is unreadable, has no sklearn flavor, or names a
            format or file that is not there.
    """
    path = folder / MLMODEL
    if not path.is_file():
        return None
    import yaml

    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ModelFileError(f"{path} is not readable YAML: {type(e).__name__}") from e
    flavors = document.get("flavors") if isinstance(document, dict) else None
    if not isinstance(flavors, dict) or not isinstance(flavors.get("sklearn"), dict):
        found = ", ".join(sorted(flavors)) if isinstance(flavors, dict) else "none"
        raise ModelFileError(
            f"{path}: expected an MLflow model with the sklearn flavor "
            f"(mlflow.sklearn.log_model); its flavors are: {found}"
        )
    flavor = flavors["sklearn"]
    serialization = str(flavor.get("serialization_format") or "pickle")
    if serialization not in FORMATS:
        raise ModelFileError(
            f"{path}: serialization_format {serialization!r} is not one of {', '.join(FORMATS)}"
        )
    model_file = folder / str(flavor.get("pickled_model") or "model.pkl")
    if not model_file.is_file():
        raise ModelFileError(f"{path} names {model_file.name}, which the folder does not hold")
    trusted = flavor.get("skops_trusted_types") or ()
    version = flavor.get("sklearn_version")
    run_id = document.get("run_id")
    return MLflowModel(
        model_file=model_file,
        serialization_format=serialization,
        skops_trusted_types=tuple(str(t) for t in trusted),
        sklearn_version=str(version) if version else None,
        run_id=str(run_id) if run_id else None,
    )


def load_skops(model: MLflowModel) -> Any:
    """Load a skops file, trusting exactly the types its MLmodel lists (and skops' defaults).

    Raises:
        ModelFileError: the file holds types nobody trusted.
    """
    import skops.io  # a dependency; imported only when a skops file is served

    untrusted = sorted(
        set(skops.io.get_untrusted_types(file=model.model_file)) - set(model.skops_trusted_types)
    )
    if untrusted:
        raise ModelFileError(
            f"{model.model_file.name} (skops) holds types its MLmodel does not trust: "
            f"{', '.join(untrusted[:10])}; log the model with skops_trusted_types listing them"
        )
    return skops.io.load(model.model_file, trusted=list(model.skops_trusted_types) or None)
