"""The strategy the settings ask for: one model, a bandit's arms, and a shadow around either.

Every model is loaded, verified and accepted (``loading.loader.load_accepted``) before any lane is
built; one that fails stops the start. ``start_native_engines`` moves bare pickles to the native
engine in the background once the server's app is built.
"""

from __future__ import annotations

from predictor.bandit.setup import bandit_for
from predictor.bundle.manifest import runtime_versions
from predictor.inference.cache import PredictionCache
from predictor.loading.loader import Loader, load_accepted
from predictor.metrics import record
from predictor.serving.arms import BanditArms
from predictor.serving.lane import ModelLane
from predictor.serving.native import upgrade_in_background
from predictor.serving.shadowed import Shadowed
from predictor.serving.strategy import Single, Strategy
from predictor.settings import Settings
from predictor.shadow.setup import shadow_runner
from predictor.shadow.targets import ShadowModel

__all__ = ["Strategy", "build_strategy", "start_native_engines"]


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
    for loaded in (lane.loaded for lane in strategy.lanes()):
        record.known_at_load(name, loaded.version, loaded.signature.classes)
        record.model_loaded(
            name,
            loaded.version,
            sha256=loaded.artifact.sha256,
            runtime=runtime_versions(),
            seconds=loaded.load_seconds,
            engine=loaded.engine.name,
        )
    runner = shadow_runner(
        name,
        strategy.face,
        settings.shadow,
        load_shadow=lambda: load_accepted(settings.for_shadow(), loader=loader),
    )
    return strategy if runner is None else Shadowed(strategy, runner)


def start_native_engines(name: str, strategy: Strategy) -> None:
    """Convert the strategy's bare pickles (and a shadow model) for the native engine."""
    for lane in strategy.lanes():
        upgrade_in_background(name, lane.loaded)
    if isinstance(strategy, Shadowed) and isinstance(strategy.runner.target, ShadowModel):
        upgrade_in_background(name, strategy.runner.target.loaded, shadow=True)
