"""Times as people type them: epoch seconds, ISO 8601 dates/times (UTC unless stated), or a
duration back from now (``30m``, ``24h``, ``7d``, ``2w``)."""

from __future__ import annotations

import datetime as dt
import re
import time

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, *, now: float | None = None) -> float:
    """Epoch seconds; raises ValueError with a message that shows the accepted forms."""
    raw = text.strip()
    if not raw:
        raise ValueError("empty time; use epoch seconds, 2026-11-01, 2026-11-01T12:00 or 7d")
    try:
        return float(raw)
    except ValueError:
        pass
    m = _DURATION.match(raw)
    if m:
        return (now if now is not None else time.time()) - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"'{text}' is not a time; use epoch seconds, an ISO date such as "
                         "2026-11-01 or 2026-11-01T12:00Z, or a duration back from now such "
                         "as 24h or 7d") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()
