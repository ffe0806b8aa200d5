"""The home page (``GET /``): what is deployed, as JSON or as a small HTML page; pure functions.

The JSON keeps KServe's ``{"status": "alive"}`` so that anything probing ``/`` still works.
"""

from __future__ import annotations

from html import escape
from typing import Any

from predictor import __version__
from predictor.server.metadata import PLATFORM, explain_parameters, model_parameters
from predictor.server.model import SklearnModel


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


def render_html(document: dict[str, Any]) -> str:
    """A plain, self-contained HTML rendering of ``home_document``."""
    sections = []
    for model in document["models"]:
        rows = [("ready", str(model["ready"]).lower())]
        for key in ("version", "sha256", "platform"):
            if key in model:
                rows.append((key, str(model[key])))
        rows.extend(sorted(model.get("parameters", {}).items()))
        table = "".join(
            f"<tr><th>{escape(key)}</th><td><code>{escape(value)}</code></td></tr>"
            for key, value in rows
        )
        sections.append(f"<h2>{escape(model['name'])}</h2><table>{table}</table>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{escape(document['app'])}</title>"
        "<style>body{font-family:sans-serif;margin:2em}th{text-align:left;padding-right:1em}"
        "td code{word-break:break-all}</style></head><body>"
        f"<h1>{escape(document['app'])} {escape(document['app_version'])}</h1>"
        f"{''.join(sections) or '<p>no models</p>'}</body></html>"
    )


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
