"""A bandit's arms as a strategy: the bandit picks the arm for each request, learning from feedback.

An A/B experiment is the same strategy with the ``fixed`` policy: fixed shares, and a caller's
sticky key keeps it on one arm.

Each arm is a lane of its own (its model, cache and batchers). The chosen arm's lane is wrapped
so that, once it answered, the pull is recorded under the id the response carries (a new one
when the request had none): that id is what ``POST .../feedback`` names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from predictor.bandit.router import Bandit
from predictor.inference.batch import Batch
from predictor.loading.loader import LoadedModel
from predictor.protocol.tensors import new_id
from predictor.serving.native import upgrade_in_background
from predictor.serving.strategy import Answer, Lane


class PulledLane:
    """An arm's lane that records its pull when it has answered."""

    def __init__(self, inner: Lane, bandit: Bandit, arm: int) -> None:
        self._inner = inner
        self._bandit = bandit
        self._arm = arm

    @property
    def loaded(self) -> LoadedModel:
        """The arm's model."""
        return self._inner.loaded

    async def answer(self, batch: Batch, request_id: str | None) -> Answer:
        """The arm's answer, with the id its feedback names."""
        return self._pulled(await self._inner.answer(batch, request_id), request_id)

    def answer_blocking(self, batch: Batch, request_id: str | None) -> Answer:
        """The arm's answer on this thread, with the id its feedback names."""
        return self._pulled(self._inner.answer_blocking(batch, request_id), request_id)

    def _pulled(self, answer: Answer, request_id: str | None) -> Answer:
        response_id = request_id or new_id()
        self._bandit.pulled(self._arm, response_id)
        return answer._replace(feedback_id=response_id)


class BanditArms:
    """Several models, one of which the bandit picks for each request."""

    def __init__(self, arms: Sequence[Lane], bandit: Bandit) -> None:
        self._arms = list(arms)
        self._pulled = [PulledLane(lane, bandit, i) for i, lane in enumerate(self._arms)]
        self.bandit = bandit

    @property
    def face(self) -> LoadedModel:
        """The first arm: its metadata and version are the model's default."""
        return self._arms[0].loaded

    def choose(self, key: str | None = None) -> Lane:
        """The arm the bandit picks (an experiment's arm that keeps ``key``, when given)."""
        return self._pulled[self.bandit.choose(key)]

    def lanes(self) -> Sequence[Lane]:
        """Every arm."""
        return self._arms

    def feedback(self, body: Any) -> dict[str, Any]:
        """Record a reward (see ``Bandit.feedback``)."""
        return self.bandit.feedback(body)

    def start(self, name: str) -> None:
        """Convert each arm that is a bare pickle for the native engine, in the background."""
        for lane in self._arms:
            upgrade_in_background(name, lane.loaded)

    def stop(self) -> None:
        """Nothing runs in the background (the bandit's state is written as it goes)."""
