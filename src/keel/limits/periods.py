"""Budget periods in UTC: where the current one started, when it ends, and its key.

``weekly`` is the ISO week (Monday 00:00 UTC); ``total`` never resets. Pure functions of a
period name and an epoch time, so they are tested with fixed clocks.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

Period = Literal["daily", "weekly", "monthly", "total"]
UTC = dt.UTC


def _day_start(now: float) -> dt.datetime:
    d = dt.datetime.fromtimestamp(now, UTC)
    return d.replace(hour=0, minute=0, second=0, microsecond=0)


def period_bounds(period: Period, now: float) -> tuple[float, float | None]:
    """``(start, end)`` of the period containing ``now``; ``end`` is None for ``total``."""
    if period == "total":
        return 0.0, None
    day = _day_start(now)
    if period == "daily":
        start, end = day, day + dt.timedelta(days=1)
    elif period == "weekly":
        start = day - dt.timedelta(days=day.weekday())
        end = start + dt.timedelta(days=7)
    elif period == "monthly":
        start = day.replace(day=1)
        end = (start.replace(year=start.year + 1, month=1) if start.month == 12
               else start.replace(month=start.month + 1))
    else:
        raise ValueError(f"unknown budget period {period!r}")
    return start.timestamp(), end.timestamp()


def period_key(period: Period, now: float) -> str:
    """A short stable name of the period containing ``now``: ``d2025-01-14``,
    ``w2025-W03`` (ISO year and week), ``m2025-01`` or ``total``."""
    if period == "total":
        return "total"
    d = dt.datetime.fromtimestamp(now, UTC)
    if period == "daily":
        return f"d{d:%Y-%m-%d}"
    if period == "weekly":
        iso = d.isocalendar()
        return f"w{iso.year:04d}-W{iso.week:02d}"
    if period == "monthly":
        return f"m{d:%Y-%m}"
    raise ValueError(f"unknown budget period {period!r}")


class PeriodClock:
    """The current key and bounds of each period, recomputed only when a period ends."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str, float, float | None]] = {}

    def current(self, period: Period, now: float) -> tuple[str, float, float | None]:
        hit = self._cache.get(period)
        if hit is not None and hit[1] <= now and (hit[2] is None or now < hit[2]):
            return hit
        start, end = period_bounds(period, now)
        hit = (period_key(period, now), start, end)
        self._cache[period] = hit
        return hit


def format_reset(ts: float | None) -> str:
    if ts is None:
        return "never (a total budget)"
    return dt.datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
