"""A strategy with a shadow: every answer is also offered to the shadow, off the response path.

The inner strategy answers; its lane is wrapped so that what it answered (rows and results) is
handed to the ``ShadowRunner``, whose worker asks the shadow and compares. The caller never
waits for the shadow and never sees its errors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from predictor.inference.batch import Batch
from predictor.loading.loader import LoadedModel
from predictor.sections import Shadow
from predictor.serving.native import upgrade_in_background
from predictor.serving.strategy import Answer, Lane, Strategy
from predictor.shadow.runner import ShadowRunner
from predictor.shadow.setup import shadow_runner
from predictor.shadow.targets import ShadowModel


class ShadowedLane:
    """A lane whose answers are offered to the shadow."""

    def __init__(self, inner: Lane, runner: ShadowRunner) -> None:
        self._inner = inner
        self._runner = runner

    @property
    def loaded(self) -> LoadedModel:
        """The inner lane's model."""
        return self._inner.loaded

    async def answer(self, batch: Batch, request_id: str | None) -> Answer:
        """The inner lane's answer, offered to the shadow."""
        answer = await self._inner.answer(batch, request_id)
        self._runner.offer(request_id, batch.features, batch.n_rows, answer.results)
        return answer

    def answer_blocking(self, batch: Batch, request_id: str | None) -> Answer:
        """The inner lane's answer on this thread, offered to the shadow."""
        answer = self._inner.answer_blocking(batch, request_id)
        self._runner.offer(request_id, batch.features, batch.n_rows, answer.results)
        return answer


class Shadowed:
    """``inner`` answers; the shadow sees what it answered."""

    def __init__(self, inner: Strategy, runner: ShadowRunner) -> None:
        self._inner = inner
        self.runner = runner
        self._wrap()

    def _wrap(self) -> None:
        """Each inner lane, wrapped once (by identity, which pickling changes: rebuilt after)."""
        self._lanes = {id(lane): ShadowedLane(lane, self.runner) for lane in self._inner.lanes()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._wrap()

    @property
    def face(self) -> LoadedModel:
        """The inner strategy's face."""
        return self._inner.face

    def choose(self) -> Lane:
        """The inner strategy's choice, wrapped."""
        lane = self._inner.choose()
        return self._lanes.get(id(lane)) or ShadowedLane(lane, self.runner)

    def lanes(self) -> Sequence[Lane]:
        """The inner strategy's lanes (the shadow answers no caller)."""
        return self._inner.lanes()

    def feedback(self, body: Any) -> dict[str, Any]:
        """The inner strategy's feedback."""
        return self._inner.feedback(body)

    def start(self, name: str) -> None:
        """The inner strategy's background work, and the shadow model's native conversion."""
        self._inner.start(name)
        if isinstance(self.runner.target, ShadowModel):
            upgrade_in_background(name, self.runner.target.loaded, shadow=True)

    def stop(self) -> None:
        """Let the shadow finish what is queued and close its log; then the inner strategy."""
        self.runner.stop()
        self._inner.stop()


def shadowed(
    name: str, strategy: Strategy, shadow: Shadow, *, load_shadow: Callable[[], LoadedModel]
) -> Strategy:
    """``strategy`` with the shadow the settings ask for (as it is when they ask for none).

    Raises:
        ArtifactError: the shadow model must not serve (unless the shadow is optional).
    """
    runner = shadow_runner(name, strategy.face, shadow, load_shadow=load_shadow)
    return strategy if runner is None else Shadowed(strategy, runner)
