"""The scenario's clock: the time each replayed call happens at, per asyncio task.

The demo replays a month of traffic in seconds, many conversations at once. Each one runs
in its own task and sets the clock to the moment of the turn it is about to send; whatever
keel reads the clock for inside that call (the trace's start and id, the budget period and
rate-limit window, a held answer's deadline) sees that moment, whatever other
conversations are doing meanwhile. The clock is handed to the components by the demo's
loader only; nothing outside this process can set it.
"""

from __future__ import annotations

from contextvars import ContextVar, Token


class SimClock:
    """Epoch seconds of the scenario, as the current task last set them (``now`` before
    any task set it). Call it like ``time.time``."""

    def __init__(self, now: float) -> None:
        self._now: ContextVar[float] = ContextVar("keel_demo_now", default=now)

    def __call__(self) -> float:
        return self._now.get()

    def set(self, t: float) -> Token[float]:
        """The clock reads ``t`` in this task (and in tasks it starts) from now on."""
        return self._now.set(t)
