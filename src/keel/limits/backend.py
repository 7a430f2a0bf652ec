"""What the counter backends (memory, Redis) return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

WINDOW_S = 60  # a rate-limit window: the last 60 one-second buckets


@dataclass(slots=True)
class Refusal:
    """Why ``admit`` refused: the index of the limit or budget in the plan, and either when
    the rate window frees up (epoch s) or the budget's spent and reserved (nano-USD)."""

    kind: Literal["limit", "budget"]
    index: int
    free_at: float = 0.0
    spent: int = 0
    reserved: int = 0


# A settlement to send again: (budget hash, reservation set, reservation member or "",
# amount reserved, spent, epoch ms it was made), amounts in nano-USD.
Repayment = tuple[str, str, str, int, int, int]

# A budget whose spend crossed its soft threshold in this settle (first time in its period):
# (index in the admission's budgets, spent in nano-USD).
SoftCrossing = tuple[int, int]


@dataclass(slots=True)
class NeedsSeed:
    """``admit`` found budget counters Redis does not hold (lost or never built): the
    indexes of those budgets in the plan. Nothing was counted."""

    indexes: list[int]
