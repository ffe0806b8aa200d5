"""The protocol every strategy speaks, and the simplest strategy: one model.

``Strategy.choose(key)`` gives the ``Lane`` that answers a request (``key``: the value of the
sticky header, which keeps a caller on an experiment's arm); the caller decodes with the
lane's model, then awaits ``lane.answer(batch, request_id)`` (``answer_blocking`` on gRPC's
threads). An ``Answer`` says what was computed, which version computed it, and the id a later
feedback names (None unless the strategy learns from feedback). A strategy that adds behaviour
(a shadow, a bandit) wraps the lanes below it; the server never branches on which one runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from predictor.errors import FeedbackNotFoundError
from predictor.inference.batch import Batch, Results
from predictor.loading.loader import LoadedModel
from predictor.serving.native import upgrade_in_background


class Answer(NamedTuple):
    """What a lane answered for one request."""

    results: Results
    version: str
    """The version of the model that computed ``results``."""
    feedback_id: str | None = None
    """The id a feedback for this answer names; None where no feedback is taken."""


class Lane(Protocol):
    """One model and the stages in front of it, answering batches of decoded rows."""

    @property
    def loaded(self) -> LoadedModel:
        """The model: its signature decodes the request, its engine says if it takes frames."""

    async def answer(self, batch: Batch, request_id: str | None) -> Answer:
        """Answer on the event loop (batched with concurrent requests)."""

    def answer_blocking(self, batch: Batch, request_id: str | None) -> Answer:
        """Answer on the calling thread (batched with the other threads' requests)."""


class Strategy(Protocol):
    """Which lane answers each request, and what else happens around it."""

    @property
    def face(self) -> LoadedModel:
        """The model that speaks for the strategy: metadata, and the default version."""

    def choose(self, key: str | None = None) -> Lane:
        """The lane that answers this request (``key``: the caller's sticky key, if any)."""

    def lanes(self) -> Sequence[Lane]:
        """Every lane that can answer (each version a caller may see)."""

    def feedback(self, body: Any) -> dict[str, Any]:
        """Record a reward for an earlier answer.

        Raises:
            FeedbackNotFoundError: this strategy takes no feedback, or no answer has that id.
            PayloadError: the body is not a feedback.
        """

    def start(self, name: str) -> None:
        """Start background work once the server is up (bare pickles to the native engine)."""

    def stop(self) -> None:
        """Finish background work (a shadow's queue) before the process ends."""


class Single:
    """One model answers every request."""

    def __init__(self, lane: Lane) -> None:
        self._lane = lane

    @property
    def face(self) -> LoadedModel:
        """The model."""
        return self._lane.loaded

    def choose(self, key: str | None = None) -> Lane:
        """Always the model's lane."""
        return self._lane

    def lanes(self) -> Sequence[Lane]:
        """The model's lane."""
        return (self._lane,)

    def feedback(self, body: Any) -> dict[str, Any]:
        """No feedback: only a bandit learns from it.

        Raises:
            FeedbackNotFoundError: always (404).
        """
        raise FeedbackNotFoundError(
            "this model is not a bandit; feedback is for --bandit_model_uris"
        )

    def start(self, name: str) -> None:
        """Convert the model for the native engine in the background, if it is a bare pickle."""
        upgrade_in_background(name, self._lane.loaded)

    def stop(self) -> None:
        """Nothing runs in the background."""
