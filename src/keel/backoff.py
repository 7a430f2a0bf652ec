"""Retry delays: exponential backoff with a cap and a choice of jitter. Imports nothing
from keel.

``Backoff(base, factor, cap, jitter).delay(n)`` is the wait before retry ``n`` (0 for the
first retry): the *step* ``base * factor ** n``, at most ``cap``, then jittered:

- ``"none"``: the step itself (a deterministic sequence, e.g. a writer waiting for its store);
- ``"full"``: uniform in ``[0, step]``;
- ``"equal"``: half the step fixed, half random, uniform in ``[step / 2, step]``;
- ``"proportional"``: the step times a factor uniform in ``[1 - spread, 1 + spread]``,
  still never more than ``cap``.

Jitter spreads the retries of many clients that failed together, so they do not return
together. The random draws come from ``rng`` when given (a ``random.Random`` of the
caller's), else from the ``random`` module's shared generator.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

Jitter = Literal["none", "full", "equal", "proportional"]
JITTERS: tuple[Jitter, ...] = ("none", "full", "equal", "proportional")


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float  # seconds: the step of the first retry
    factor: float = 2.0
    cap: float = math.inf  # seconds: no delay is longer
    jitter: Jitter = "none"
    spread: float = 0.25  # for "proportional": the step varies by up to this fraction

    def __post_init__(self) -> None:
        if not (self.base >= 0 and self.factor >= 1 and self.cap >= 0):
            raise ValueError(f"Backoff: need base >= 0, factor >= 1 and cap >= 0 "
                             f"(got {self.base}, {self.factor}, {self.cap})")
        if self.jitter not in JITTERS:
            raise ValueError(f"Backoff: jitter must be one of {JITTERS}, got {self.jitter!r}")
        if not 0 <= self.spread <= 1:
            raise ValueError(f"Backoff: spread must be within [0, 1], got {self.spread}")

    def step(self, attempt: int) -> float:
        """The delay before retry ``attempt`` without jitter: ``base * factor ** attempt``,
        at most ``cap`` (however large ``attempt`` is)."""
        try:
            step = self.base * self.factor ** max(attempt, 0)
        except OverflowError:
            step = math.inf
        return min(step, self.cap)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait before retry ``attempt`` (0, 1, 2, ...), in seconds."""
        step = self.step(attempt)
        if self.jitter == "none" or not math.isfinite(step):
            return step
        draw = rng.random() if rng is not None else random.random()
        if self.jitter == "full":
            return step * draw
        if self.jitter == "equal":
            half = step / 2
            return half + half * draw
        return min(step * (1 - self.spread + 2 * self.spread * draw), self.cap)

