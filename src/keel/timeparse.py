"""Times as people type them, one grammar for every ``--since``/``--until`` of the CLI and
every ``since``/``until``/``from``/``to`` of the API:

- UNIX seconds in ASCII digits (``1793491200``, ``1793491200.5``);
- a duration back from now: a number and a unit ``s``, ``m``, ``h``, ``d`` or ``w``
  (``30m``, ``2h``, ``7d``, ``1w``, ``1.5h``);
- an ISO 8601 date or time (``2026-11-01``, ``2026-11-01T12:00Z``,
  ``2026-11-01 12:00+02:00``), UTC unless it says otherwise.

Nothing else: no exponents, signs, underscores or other scripts' digits, which ``float()``
and ``int()`` would read.

Every result lies between the epoch and the end of the year 9999 (``MIN_TIME``..``MAX_TIME``):
a larger number is not a time anyone means, and it would overflow date arithmetic and the
stores' integer columns further on."""

from __future__ import annotations

import datetime as dt
import math
import re
import time

from keel.errors import excerpt

_EPOCH = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?) *([smhdw])", re.ASCII)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MIN_TIME = 0.0
MAX_TIME = 253402300799.0  # 9999-12-31T23:59:59Z
FORMS = ("use UNIX seconds, an ISO date or time such as 2026-11-01 or 2026-11-01T12:00Z, "
         "or a duration back from now such as 30m, 2h, 7d or 1w")


def in_range(value: float, given: object) -> float:
    """``value`` if it is a time keel takes; else ValueError quoting what was ``given``."""
    if not math.isfinite(value) or not MIN_TIME <= value <= MAX_TIME:
        raise ValueError(f"{excerpt(given)} is outside the times keel takes (1970 to the year "
                         f"9999); {FORMS}")
    return value


def parse_time(text: str, *, now: float | None = None) -> float:
    """Epoch seconds; raises ValueError with a message that shows the accepted forms."""
    raw = text.strip()
    if not raw:
        raise ValueError(f"empty time; {FORMS}")
    if _EPOCH.fullmatch(raw):
        return in_range(float(raw), text)
    m = _DURATION.fullmatch(raw)
    if m:
        back = float(m.group(1)) * _UNITS[m.group(2)]
        return in_range((now if now is not None else time.time()) - back, text)
    if not raw.isascii():  # fromisoformat() also reads other scripts' digits
        raise ValueError(f"{excerpt(text)} is not a time; {FORMS}")
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{excerpt(text)} is not a time; {FORMS}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return in_range(when.timestamp(), text)
