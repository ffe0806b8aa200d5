"""The home page (``GET /``): what is deployed, as JSON or, for a browser, the page of ``home``.

The JSON keeps KServe's ``{"status": "alive"}`` so that anything probing ``/`` still works. The
page is built on demand: nothing on the prediction routes changes for it.
"""

from __future__ import annotations

from typing import Any

from predictor import __version__
from predictor.home.card import model_card
from predictor.home.live import LiveHistory, numbers
from predictor.home.page import render_page
from predictor.metrics.exposition import current_samples
from predictor.server.metadata import PLATFORM, explain_parameters, model_parameters
from predictor.server.model import SklearnModel

LIVE_WINDOW_S = 300.0
"""The home page's recent numbers cover this long."""


def home_document(models: list[SklearnModel]) -> dict[str, Any]:
    """The home page's content: the app, and each model's version, digest and lineage."""
    described = []
    for model in models:
        entry: dict[str, Any] = {"name": model.name, "ready": bool(model.ready)}
        if model.ready:
            loaded = model.loaded
            explain = explain_parameters(model.explaining.describe())
            entry.update(
                version=loaded.version,
                sha256=loaded.artifact.sha256,
                platform=PLATFORM,
                parameters=model_parameters(loaded) | explain,
            )
            if len(model.versions) > 1:  # a bandit's arms: every version that answers
                entry["versions"] = [
                    {"version": m.version, "sha256": m.artifact.sha256} for m in model.versions
                ]
        described.append(entry)
    return {
        "status": "alive",
        "app": "kserve-sklearn-predictor",
        "app_version": __version__,
        "models": described,
    }


def render_html(
    document: dict[str, Any], models: list[SklearnModel], history: LiveHistory, docs_url: str | None
) -> str:
    """The page for a browser: each model's card, live numbers and try-it form (``home``)."""
    now = history.now()
    recent = history.ago(LIVE_WINDOW_S)
    cards = []
    for model in models:
        if not model.ready:
            cards.append({"name": model.name, "ready": False})
            continue
        card = model_card(model.name, model.loaded, model.versions, shadow_version(model))
        card["outputs"] = [o["name"] for o in model.metadata()["outputs"]]  # explanations too
        card["live"] = {
            "since_start": numbers(model.name, now, None),
            "recent": numbers(model.name, now, recent) if recent is not None else None,
        }
        cards.append(card)
    return render_page(document, cards, docs_url)


def live_history() -> LiveHistory:
    """Snapshots of this process's metrics, taken from now on, for the page's recent numbers."""
    history = LiveHistory(current_samples)
    history.start()
    return history


def shadow_version(model: SklearnModel) -> str | None:
    """The version of the model's shadow, when it has a shadow model."""
    runner = getattr(model.strategy, "runner", None)
    target = getattr(runner, "target", None)
    version = getattr(target, "version", None)
    return str(version) if version is not None else None


def prefers_html(accept: str | None) -> bool:
    """True when the client asked for HTML before JSON (a browser); JSON otherwise."""
    if not accept:
        return False
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("text/html", "application/xhtml+xml"):
            return True
        if media in ("application/json", "*/*"):
            return False
    return False
