"""Building the bandit from the settings: its arms' versions, the policy, where state lives."""

from __future__ import annotations

from collections.abc import Sequence

from predictor.bandit.fallback import FallbackState
from predictor.bandit.router import Bandit
from predictor.bandit.state import BanditState, MemoryState, RedisState
from predictor.errors import ConfigError
from predictor.loading.loader import LoadedModel
from predictor.sections import Bandit as BanditSettings


def bandit_for(name: str, arms: Sequence[LoadedModel], settings: BanditSettings) -> Bandit:
    """The bandit over ``arms`` (loaded, in the order of ``bandit_model_uris``).

    Raises:
        ConfigError: two arms have the same version (arms are told apart by version), or the
            Redis state cannot be reached.
    """
    versions = [a.version for a in arms]
    if len(set(versions)) != len(versions):
        raise ConfigError(
            "bandit_model_uris: two arms have the same model version; each arm must be "
            "another version (responses name the arm that answered by its version)"
        )
    ttl = settings.feedback_ttl_seconds
    state: BanditState
    if settings.state is not None:
        shared = RedisState(settings.state, name, versions, ttl_s=ttl)
        state = FallbackState(shared, model=name, arms=len(versions))
    else:
        state = MemoryState(versions, ttl_s=ttl)
    return Bandit(
        model=name,
        versions=versions,
        policy=settings.policy,
        state=state,
        epsilon=settings.epsilon,
        weights=settings.weights,
        sticky=settings.sticky_header is not None,
    )
