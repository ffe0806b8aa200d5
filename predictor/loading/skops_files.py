"""Model files that cannot run code: skops, read with exactly the types someone trusted.

A pickle runs whatever its author put in it; a ``.skops`` file is a zip of a JSON schema and
arrays, and ``skops.io.load`` builds only the types it is told to trust. Which types those are is
decided here:

- a bundle's ``model.json`` lists the exact types its file holds (``publish --format skops``
  records them, and the bundle's digest covers the list: ``bundle.manifest.trust_digest``);
- a bare ``.skops`` file is trusted with skops' own defaults, the classes of scikit-learn and of
  the installed extras (xgboost, lightgbm), and a few harmless containers (``DEFAULT_ALSO``).

Anything else is refused before a single object is built, with one line naming the type.
"""

from __future__ import annotations

import importlib
import json
import zipfile
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from predictor.errors import ModelFileError, PublishError

SKOPS_SUFFIX = ".skops"

CLASS_PACKAGES = ("sklearn", "xgboost", "lightgbm")
"""Packages whose classes a bare ``.skops`` file may hold (when they are installed)."""

DEFAULT_ALSO = frozenset(
    {
        "numpy.dtype",
        "collections.OrderedDict",
        "functools.partial",  # its function is a node of its own, trusted or refused alone
        "sklearn.utils.validation.check_array",  # what HistGradientBoosting keeps for categories
    }
)
"""Names trusted in a bare file beyond skops' defaults and the packages' classes."""

NOT_SAFE_AS_SKOPS = {
    "skorch": "skorch keeps its network with torch.save, a pickle that loading would run",
}
"""Packages a skops file must not hold, because loading them unpickles after all."""


def _skops() -> Any:
    try:
        import skops.io
    except ModuleNotFoundError as e:  # pragma: no cover - skops is a dependency
        raise ModelFileError("reading .skops files needs skops: pip install skops") from e
    return skops.io


def types_in(path: Path) -> tuple[str, ...]:
    """Every type and function a skops file names, sorted (read from its schema, not built).

    Raises:
        ModelFileError: the file is not a skops file.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise ModelFileError(f"{path.name} is not a skops file: {type(e).__name__}") from e
    found: set[str] = set()
    _collect(schema, found)
    return tuple(sorted(found))


def _collect(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        module, name = node.get("__module__"), node.get("__class__")
        if isinstance(module, str) and isinstance(name, str):
            found.add(f"{module}.{name}")
        for value in node.values():
            _collect(value, found)
    elif isinstance(node, list):
        for value in node:
            _collect(value, found)


def load_trusting(path: Path, trusted: Sequence[str]) -> Any:
    """Build the model in ``path`` with exactly ``trusted`` (a manifest's list).

    Raises:
        ModelFileError: the file holds a type the list does not name.
    """
    sio = _skops()
    beyond = sorted(set(types_in(path)) - set(trusted))
    if beyond:
        raise ModelFileError(
            f"{path.name} holds {len(beyond)} type(s) its manifest does not trust, first "
            f"{beyond[0]}; republish the bundle (publish --format skops) to record them"
        )
    _refuse_unsafe(path.name, trusted)
    return sio.load(path, trusted=list(trusted))


def load_bare(path: Path) -> Any:
    """Build the model in a ``.skops`` file that has no manifest, with the default trust.

    Raises:
        ModelFileError: the file holds a type outside the default trust, naming the first.
    """
    sio = _skops()
    untrusted = sorted(sio.get_untrusted_types(file=path))
    _refuse_unsafe(path.name, untrusted)
    refused = [name for name in untrusted if not trusted_by_default(name)]
    if refused:
        raise ModelFileError(
            f"{path.name} holds {len(refused)} type(s) outside scikit-learn's, first "
            f"{refused[0]}; publish it as a bundle (publish --format skops) to trust them "
            "by name"
        )
    return sio.load(path, trusted=untrusted)


def dump(estimator: Any, path: Path) -> tuple[str, ...]:
    """Write ``estimator`` as a skops file; returns the types it holds (for the manifest).

    Raises:
        PublishError: skops cannot write it, or what it holds would run code when loaded.
    """
    sio = _skops()
    try:
        sio.dump(estimator, path)
    except Exception as e:  # skops raises what the object's own state raises
        raise PublishError(
            f"skops cannot write this model: {type(e).__name__}; publish it as a pickle"
        ) from e
    held = types_in(path)
    _refuse_unsafe(path.name, held, error=PublishError)
    return held


def _refuse_unsafe(
    name: str, types: Iterable[str], error: type[Exception] = ModelFileError
) -> None:
    for type_name in types:
        package = type_name.partition(".")[0]
        if package in NOT_SAFE_AS_SKOPS:
            raise error(
                f"{name} holds {type_name}: {NOT_SAFE_AS_SKOPS[package]}; serve it as a "
                "pinned pickle instead"
            )


@cache
def trusted_by_default(name: str) -> bool:
    """Whether a bare file may hold ``name``: a class of scikit-learn or an installed extra.

    Modules are imported only for those packages; functions are not trusted (a function kept
    in a model is called with its data), except the few in ``DEFAULT_ALSO``.
    """
    if name in DEFAULT_ALSO:
        return True
    module_name, _, attribute = name.rpartition(".")
    if module_name.partition(".")[0] not in CLASS_PACKAGES:
        return False
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    return isinstance(getattr(module, attribute, None), type)
