"""Day labels of cost reports. Times people type are read by
:func:`keel.timeparse.parse_time`, the one parser of the CLI and the API."""

from __future__ import annotations

import datetime as dt


def day_label(ts: float) -> str:
    """The UTC day ``ts`` falls in, as ``2026-11-01``."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")
