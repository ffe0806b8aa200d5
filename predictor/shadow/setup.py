"""Building the shadow from the settings: load the shadow model (or name the mirror), the log.

The shadow model gets every load-time check the primary got (digest, version skew, acceptance),
from its own URI and pin. If it cannot be loaded, start-up fails, unless ``shadow_optional``,
when the primary serves alone and the reason is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from predictor.errors import PredictorError
from predictor.loading.loader import LoadedModel
from predictor.sections import Shadow
from predictor.shadow.log import PredictionLog
from predictor.shadow.runner import ShadowRunner
from predictor.shadow.targets import MirrorEndpoint, ShadowModel, ShadowTarget

logger = logging.getLogger(__name__)


def shadow_runner(
    name: str, primary: LoadedModel, settings: Shadow, *, load_shadow: Callable[[], LoadedModel]
) -> ShadowRunner | None:
    """The shadow worker the settings ask for, or None.

    ``load_shadow`` loads the shadow model with every check the primary got.

    Raises:
        ArtifactError: the shadow model cannot be served and ``shadow_optional`` is off; the
            message names it as the shadow.
    """
    target: ShadowTarget | None = None
    if settings.model_uri is not None:
        try:
            target = ShadowModel(load_shadow())
        except PredictorError as e:
            if not settings.optional:
                raise type(e)(f"shadow model {settings.model_uri}: {e}") from e
            logger.error("serving without the shadow (shadow_optional): %s", e)
        else:
            logger.info("shadow model loaded: version %s", target.version)
    elif settings.url is not None:
        target = MirrorEndpoint(settings.url)
    if target is None:
        return None
    log = None
    if settings.prediction_log is not None:
        log = PredictionLog(
            settings.prediction_log,
            max_bytes=settings.log_max_bytes,
            max_seconds=settings.log_max_seconds,
            deadline_s=settings.deadline_seconds,
            spool_bytes=int(settings.log_spool_mb * 1024 * 1024),
        )
    return ShadowRunner(
        model=name,
        version=primary.version,
        classes=primary.signature.classes,
        target=target,
        log=log,
        sample_rate=settings.sample_rate,
        queue_size=settings.queue_size,
        tolerance=settings.tolerance,
        log_inputs=settings.log_inputs,
    )
