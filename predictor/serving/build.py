"""The strategy the settings ask for: one model, a bandit's arms, and a shadow around either.

Every model is loaded, verified and accepted (``loading.gate.load_accepted``) before any lane is
built; one that fails stops the start. Each model's metrics series are made as it is served
(``serving.observed``), and a model whose bundle carries a reference is watched for drift
(``serving.watched``).
"""

from __future__ import annotations

from predictor.bandit.setup import bandit_for
from predictor.inference.cache import PredictionCache
from predictor.loading.gate import Loader, load_accepted
from predictor.serving import observed
from predictor.serving.arms import BanditArms
from predictor.serving.lane import ModelLane
from predictor.serving.shadowed import shadowed
from predictor.serving.strategy import Single, Strategy
from predictor.serving.watched import watched
from predictor.settings import Settings

__all__ = ["Strategy", "build_strategy"]


def build_strategy(name: str, settings: Settings, loader: Loader) -> Strategy:
    """Load every model the settings name and the strategy that serves them.

    Raises:
        ArtifactError: a model must not serve (``AcceptanceError`` when its own tests fail).
        ConfigError: the arms cannot make a bandit.
    """
    limits = settings.limits
    cache = PredictionCache(limits.cache_size)
    strategy: Strategy
    if not settings.bandit_uris:
        strategy = Single(ModelLane(name, load_accepted(settings, loader=loader), limits, cache))
    else:
        arms = [
            ModelLane(name, load_accepted(settings.for_arm(i), loader=loader), limits, cache)
            for i in range(len(settings.bandit_uris))
        ]
        bandit = bandit_for(name, [a.loaded for a in arms], settings.bandit)
        strategy = BanditArms(arms, bandit)
    for lane in strategy.lanes():
        observed.loaded(name, lane.loaded)
    strategy = watched(name, strategy, settings.drift)
    return shadowed(
        name,
        strategy,
        settings.shadow,
        load_shadow=lambda: load_accepted(settings.for_shadow(), loader=loader),
    )
