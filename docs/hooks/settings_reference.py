"""MkDocs hook: the settings page's table is built from the ``Settings`` model at every build."""

from __future__ import annotations

from typing import Any

MARKER = "<!-- settings-reference -->"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Put the generated table where the settings page has its marker."""
    if MARKER not in markdown:
        return markdown
    from predictor.cli.flags import settings_reference

    return markdown.replace(MARKER, settings_reference())
