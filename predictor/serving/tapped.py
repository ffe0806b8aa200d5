"""A strategy whose lanes hand each answer to a tap, off the response path: shadows, drift.

``Tapped`` wraps some of the inner strategy's lanes (by position in ``lanes()``); a wrapped
lane answers as the inner one does, then gives the tap the request's id, its decoded batch and
the answer. A tap only queues (a shadow's runner, a drift monitor): the caller never waits for
what it does with them. Picklable: a tap is a ``functools.partial`` of a module function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from predictor.inference.batch import Batch
from predictor.loading.loader import LoadedModel
from predictor.serving.strategy import Answer, Lane, Strategy

Tap = Callable[[str | None, Batch, Answer], None]
"""What a lane's answers are handed to: (request id, decoded batch, answer)."""


class TappedLane:
    """A lane whose answers are also handed to ``tap``."""

    def __init__(self, inner: Lane, tap: Tap) -> None:
        self._inner = inner
        self._tap = tap

    @property
    def loaded(self) -> LoadedModel:
        """The inner lane's model."""
        return self._inner.loaded

    async def answer(self, batch: Batch, request_id: str | None) -> Answer:
        """The inner lane's answer, handed to the tap."""
        answer = await self._inner.answer(batch, request_id)
        self._tap(request_id, batch, answer)
        return answer

    def answer_blocking(self, batch: Batch, request_id: str | None) -> Answer:
        """The inner lane's answer on this thread, handed to the tap."""
        answer = self._inner.answer_blocking(batch, request_id)
        self._tap(request_id, batch, answer)
        return answer


class Tapped:
    """``inner`` answers; the lanes that have a tap in ``taps`` (by position) hand it answers."""

    def __init__(self, inner: Strategy, taps: Mapping[int, Tap]) -> None:
        self._inner = inner
        self.taps = dict(taps)
        self._wrap()

    def _wrap(self) -> None:
        """Each tapped lane, wrapped once (by identity, which pickling changes: rebuilt after).

        ``lanes()`` gives the wrapped lanes, so that a request naming its version is tapped too,
        and a ``Tapped`` around this one finds what this one's ``choose()`` gives among them.
        """
        inner = self._inner.lanes()
        self._tapped: list[Lane] = [
            TappedLane(lane, self.taps[i]) if i in self.taps else lane
            for i, lane in enumerate(inner)
        ]
        self._by_id = {id(lane): tapped for lane, tapped in zip(inner, self._tapped, strict=True)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._wrap()

    @property
    def face(self) -> LoadedModel:
        """The inner strategy's face."""
        return self._inner.face

    def choose(self, key: str | None = None) -> Lane:
        """The inner strategy's choice, wrapped when it has a tap."""
        lane = self._inner.choose(key)
        return self._by_id.get(id(lane), lane)

    def lanes(self) -> Sequence[Lane]:
        """The inner strategy's lanes, those with a tap wrapped."""
        return self._tapped

    def feedback(self, body: Any) -> dict[str, Any]:
        """The inner strategy's feedback."""
        return self._inner.feedback(body)

    def start(self, name: str) -> None:
        """The inner strategy's background work."""
        self._inner.start(name)

    def stop(self) -> None:
        """The inner strategy's stop."""
        self._inner.stop()
