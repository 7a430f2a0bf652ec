"""Points in time as people write them: a date, an ISO datetime, epoch seconds, or a
duration back from now."""

from __future__ import annotations

import datetime as dt
import math
import re
import time

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

FORMATS = "a date (2026-11-01, UTC), an ISO datetime, UNIX seconds, or a duration ago (7d, 12h)"


def parse_time(value: object, *, now: float | None = None) -> float:
    """UTC epoch seconds. A bare date is its midnight UTC; a datetime without an offset is
    UTC. Raises ``ValueError`` naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"expected {FORMATS}, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"expected {FORMATS}, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected {FORMATS}, got {value!r}")
    text = value.strip()
    m = _DURATION.match(text)
    if m:
        return (time.time() if now is None else now) - int(m.group(1)) * _UNITS[m.group(2)]
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
        raise ValueError(f"expected {FORMATS}, got {value!r}")
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected {FORMATS}, got {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def day_label(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")
