"""Moving a bare pickle to the native engine in the background, once the server is up.

The model serves meanwhile on the engine it loaded with; when the conversion is verified the
engine switches, and the ``model_info`` series follows (a shadow model has no series of its
own: its switch is only logged).
"""

from __future__ import annotations

import logging
import threading

from predictor.loading.loader import LoadedModel
from predictor.serving import observed

logger = logging.getLogger(__name__)


def upgrade_in_background(
    name: str, loaded: LoadedModel, *, shadow: bool = False
) -> threading.Thread | None:
    """Convert ``loaded`` for the native engine on a thread; None when there is nothing to do."""
    upgrade = loaded.native_upgrade
    if upgrade is None or loaded.engine.switched:
        return None

    def convert() -> None:
        before = loaded.engine.name
        if not upgrade.run(loaded.engine):
            return
        if shadow:
            logger.info("shadow model %s: now on the %s engine", loaded.version, loaded.engine.name)
        else:
            observed.switched(name, loaded, before)

    thread = threading.Thread(target=convert, name=f"native-engine-{name}", daemon=True)
    thread.start()
    return thread
