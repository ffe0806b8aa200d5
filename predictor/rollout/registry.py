"""Resolving an MLflow registry alias before a rollout writes it down: a thin adapter.

``canary start --model-uri models:/taxi@challenger`` must not leave an alias in the
InferenceService: an alias moves, and a pod restarted later would serve another version. The
alias is resolved here, once, to ``models:/taxi/<version>``, and the alias goes in the audit
annotations. The URI is parsed, and the registry asked, by the same code that serves
``models:/`` URIs (``stores.uris``, ``stores.mlflow``): one parser, one client set-up, one
retry budget.
"""

from __future__ import annotations

from predictor.errors import PredictorError
from predictor.rollout.errors import RolloutError
from predictor.stores.uris import ModelURI, parse_model_uri

DEADLINE_S = 30.0
"""How long resolving may retry a registry that does not answer."""


class RegistryError(RolloutError):
    """The MLflow registry could not resolve the alias."""


def split_alias(uri: str) -> tuple[str, str] | None:
    """``(name, alias)`` for ``models:/NAME@ALIAS``; None for any other URI."""
    parsed = _parsed(uri)
    if parsed is None or parsed.scheme != "models" or parsed.alias is None:
        return None
    return parsed.path, parsed.alias


def resolve_alias(uri: str) -> tuple[str, str]:
    """``(concrete URI, version)`` for ``models:/NAME@ALIAS``.

    Raises:
        RegistryError: no tracking server configured, no such model or alias, or it failed.
    """
    parsed = _parsed(uri)
    if parsed is None or parsed.alias is None:
        raise RegistryError(f"{uri!r} is not models:/NAME@ALIAS")
    try:
        from predictor.stores.mlflow import MLflowRegistry

        resolved = MLflowRegistry(deadline_s=DEADLINE_S).resolve(parsed)
    except ModuleNotFoundError as e:
        raise RegistryError(
            f"{uri}: resolving an alias needs MLflow: "
            "pip install 'kserve-sklearn-predictor[mlflow]'"
        ) from e
    except PredictorError as e:
        raise RegistryError(str(e)) from e
    version = resolved["registry_version"]
    return f"models:/{parsed.path}/{version}", version


def _parsed(uri: str) -> ModelURI | None:
    try:
        return parse_model_uri(uri)
    except PredictorError:
        return None
