"""A strategy with a shadow: every answer is also offered to the shadow, off the response path.

The inner strategy answers; each of its lanes is tapped (``serving.tapped``) so that what it
answered (rows and results) is handed to the ``ShadowRunner``, whose worker asks the shadow and
compares. The caller never waits for the shadow and never sees its errors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from predictor.inference.batch import Batch
from predictor.loading.loader import LoadedModel
from predictor.sections import Shadow
from predictor.serving.native import upgrade_in_background
from predictor.serving.strategy import Answer, Strategy
from predictor.serving.tapped import Tapped
from predictor.shadow.runner import ShadowRunner
from predictor.shadow.setup import shadow_runner
from predictor.shadow.targets import ShadowModel


def offer_to_shadow(
    runner: ShadowRunner, request_id: str | None, batch: Batch, answer: Answer
) -> None:
    """A lane's tap: the answer, offered to the shadow."""
    runner.offer(request_id, batch.features, batch.n_rows, answer.results)


class Shadowed(Tapped):
    """``inner`` answers; the shadow sees what every lane answered."""

    def __init__(self, inner: Strategy, runner: ShadowRunner) -> None:
        self.runner = runner
        tap = functools.partial(offer_to_shadow, runner)
        super().__init__(inner, {i: tap for i in range(len(inner.lanes()))})

    def start(self, name: str) -> None:
        """The inner strategy's background work, and the shadow model's native conversion."""
        super().start(name)
        if isinstance(self.runner.target, ShadowModel):
            upgrade_in_background(name, self.runner.target.loaded, shadow=True)

    def stop(self) -> None:
        """Let the shadow finish what is queued and close its log; then the inner strategy."""
        self.runner.stop()
        super().stop()


def shadowed(
    name: str, strategy: Strategy, shadow: Shadow, *, load_shadow: Callable[[], LoadedModel]
) -> Strategy:
    """``strategy`` with the shadow the settings ask for (as it is when they ask for none).

    Raises:
        ArtifactError: the shadow model must not serve (unless the shadow is optional).
    """
    runner = shadow_runner(name, strategy.face, shadow, load_shadow=load_shadow)
    return strategy if runner is None else Shadowed(strategy, runner)
