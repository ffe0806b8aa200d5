"""Command-line flags made from the ``Settings`` model, so that a setting is declared once.

Every field becomes ``--<field>`` with the field's docstring as its help. A flag left out
defaults to None, so the environment (``PREDICTOR_<FIELD>``) or the field's default applies;
pydantic parses the text, as it parses the environment. Booleans take ``true``/``false`` or
stand alone for true.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from predictor.errors import ConfigError
from predictor.settings import Settings
from predictor.validation import describe_errors


def add_settings_flags(
    parser: argparse.ArgumentParser,
    *,
    only: Iterable[str] | None = None,
    title: str = "predictor (each also PREDICTOR_<NAME> in the environment)",
) -> None:
    """Add ``--<field>`` for every field of ``Settings`` (or the fields in ``only``)."""
    group = parser.add_argument_group(title)
    wanted = set(only) if only is not None else None
    for name, field in Settings.model_fields.items():
        if wanted is not None and name not in wanted:
            continue
        help_text = " ".join((field.description or "").split())
        if _is_bool(field.annotation):
            group.add_argument(
                f"--{name}",
                nargs="?",
                const=True,
                type=_boolean,
                metavar="true|false",
                help=help_text,
            )
        else:
            metavar = "N" if field.annotation is int else name.split("_")[-1].upper()
            group.add_argument(f"--{name}", metavar=metavar, help=help_text)


def settings_from(args: argparse.Namespace, **given: Any) -> Settings:
    """``Settings`` from the environment with the flags in ``args`` (and ``given``) on top.

    Raises:
        ConfigError: a setting is missing or malformed; the message names it.
    """
    flags = {name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)}
    return load_settings(flags | given)


def _is_bool(annotation: Any) -> bool:
    if annotation is bool:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return bool in typing.get_args(annotation)
    return False


def _boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError("expected true or false")


def settings_reference() -> str:
    """Every setting as a Markdown table (environment, flag, default, meaning), from ``Settings``.

    The documentation's settings page is built from this, so it cannot drift from the code.
    """
    rows = [
        "| environment | flag | type | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        kind = _type_name(field.annotation)
        default = "required" if field.is_required() else repr(field.default)
        default = "unset" if field.default is None else default
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(
            f"| `PREDICTOR_{name.upper()}` | `--{name}` | {kind} | `{default}` | {meaning} |"
        )
    return "\n".join(rows) + "\n"


def _type_name(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    inner = args[0] if args else annotation
    return str(getattr(inner, "__name__", inner)).replace("Path", "path")


def load_settings(overrides: dict[str, Any]) -> Settings:
    """Build Settings from the environment, with non-None ``overrides`` (CLI flags) on top.

    Raises:
        ConfigError: a setting is missing or malformed; the message names it.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as e:
        raise ConfigError(
            f"invalid settings ({describe_errors(e)}); every setting is in docs/settings.md "
            "and in python -m predictor --help"
        ) from e
