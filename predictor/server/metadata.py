"""The v2 model metadata document, built from the model's signature; pure functions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sklearn

from predictor.inference.signature import PREDICT_PROBA, Signature

if TYPE_CHECKING:
    from predictor.loading.loader import LoadedModel

PLATFORM = f"sklearn_{sklearn.__version__}"


def input_types(signature: Signature) -> list[dict[str, Any]]:
    """One ``[-1, F]`` tensor, one ``[-1]`` tensor per named feature, or ``[-1]`` texts."""
    if signature.text:
        return [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    if signature.feature_names is None:
        width = signature.n_features if signature.n_features is not None else -1
        datatype = "FP64" if signature.all_numeric else "BYTES"
        return [{"name": "input-0", "datatype": datatype, "shape": [-1, width]}]
    return [
        {"name": name, "datatype": dtype, "shape": [-1]}
        for name, dtype in zip(signature.feature_names, signature.feature_dtypes, strict=True)
    ]


def output_types(signature: Signature, *, with_parameters: bool) -> list[dict[str, Any]]:
    """Every output the model gives, ``predict_proba`` with its class labels."""
    outputs: list[dict[str, Any]] = []
    for name in signature.outputs:
        spec = signature.output(name)
        tensor: dict[str, Any] = {
            "name": name,
            "datatype": spec.datatype,
            "shape": [-1, *spec.row_shape],
        }
        if name == PREDICT_PROBA and with_parameters and signature.classes is not None:
            tensor["parameters"] = {"classes": list(signature.classes)}
        outputs.append(tensor)
    return outputs


def model_metadata(name: str, loaded: LoadedModel, versions: list[str]) -> dict[str, Any]:
    """The REST metadata of ``loaded``, one of ``versions`` (every version that answers).

    gRPC drops the fields its messages cannot carry.
    """
    return {
        "name": name,
        "versions": versions,
        "platform": PLATFORM,
        "inputs": input_types(loaded.signature),
        "outputs": output_types(loaded.signature, with_parameters=True),
        "parameters": model_parameters(loaded),
    }


def model_parameters(loaded: LoadedModel) -> dict[str, str]:
    """Version, digest, lineage and acceptance verdicts, as scalar v2 parameters."""
    parameters = {
        "task": loaded.signature.task,
        "sha256": loaded.artifact.sha256,
        "source": loaded.artifact.source.raw,
        "engine": loaded.engine_reason,
    }
    if loaded.artifact.generation is not None:
        parameters["generation"] = str(loaded.artifact.generation)
    parameters.update(loaded.lineage())
    parameters.update({f"acceptance_{k}": v for k, v in loaded.acceptance.as_dict().items()})
    return parameters


def drift_parameter(loaded: LoadedModel, window_rows: int) -> dict[str, str]:
    """Whether the model's inputs are watched for drift, and if not, why, as a v2 parameter."""
    if loaded.reference is None:
        why = "the model carries no reference; publish it as a bundle with --sample FILE"
        return {"drift": f"off: {why}"}
    if loaded.signature.text:
        return {"drift": "off: a text model's input is one document, not features"}
    if window_rows == 0:
        return {"drift": "off: PREDICTOR_DRIFT_WINDOW_ROWS is 0"}
    window = f"over the last {window_rows} rows"
    return {"drift": f"on: each feature against the bundle's reference, {window}"}


def explain_parameters(described: dict[str, Any] | None) -> dict[str, str]:
    """How ``:explain`` answers for the model (``Explanations.describe()``), as v2 parameters."""
    if described is None:
        return {}
    if not described["available"]:
        return {"explain": f"unavailable: {described['reason']}"}
    return {
        "explain": described["method"],
        "explain_output": described["output"],
        "explain_exact": str(described["exact"]).lower(),
    }


def explain_outputs(described: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The explanation outputs a v2 request may ask for, when the model can be explained."""
    if described is None or not described["available"]:
        return []
    features = described["features"]
    return [
        {
            "name": "contributions",
            "datatype": "FP64",
            "shape": [-1, len(features)],
            "parameters": {"features": features, "method": described["method"]},
        },
        {"name": "base_value", "datatype": "FP64", "shape": [-1]},
    ]
