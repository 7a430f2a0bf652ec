"""How the console writes numbers, times and trends, and draws sparklines (SVG drawn on the
server: no script, nothing to load)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

DASH = "\N{EN DASH}"  # what an unknown number shows
TIMES = "\N{MULTIPLICATION SIGN}"

__all__ = ["DASH", "FILTERS", "GLOBALS", "change", "money", "pct", "sparkline"]


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def money(v: Any) -> str:
    f = _num(v)
    if f is None:
        return DASH
    if f == 0:
        return "$0"
    if abs(f) < 0.01:
        return f"${f:.4f}"
    if abs(f) < 100:
        return f"${f:,.2f}"
    return f"${f:,.0f}"


def pct(v: Any, digits: int = 1) -> str:
    f = _num(v)
    return DASH if f is None else f"{f * 100:.{digits}f}%"


def num(v: Any) -> str:
    f = _num(v)
    if f is None:
        return DASH
    if f == int(f):
        return f"{int(f):,}"
    return f"{f:,.2f}"


def ms(v: Any) -> str:
    f = _num(v)
    if f is None:
        return DASH
    return f"{f:,.0f} ms" if f >= 10 else f"{f:.1f} ms"


def when(v: Any) -> str:
    f = _num(v)
    if f is None:
        return DASH
    return dt.datetime.fromtimestamp(f, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def day(v: Any) -> str:
    f = _num(v)
    return DASH if f is None else dt.datetime.fromtimestamp(f, dt.UTC).strftime("%Y-%m-%d")


def change(before: Any, after: Any) -> float | None:
    """The relative change from ``before`` to ``after``; None when either is unknown or
    ``before`` is zero."""
    b, a = _num(before), _num(after)
    if b is None or a is None or b == 0:
        return None
    return (a - b) / abs(b)


def trend(before: Any, after: Any, good: str = "up") -> Markup:
    """An arrow and the change, classed good/bad by which direction is ``good`` ("up",
    "down", or "none" for a neutral measure)."""
    c = change(before, after)
    if c is None:
        return Markup('<span class="trend flat" title="no earlier value to compare">·</span>')
    if abs(c) < 0.005:
        return Markup('<span class="trend flat" title="unchanged">→ 0%</span>')
    arrow = "↑" if c > 0 else "↓"
    mood = "neutral" if good == "none" else (
        "good" if (c > 0) == (good == "up") else "bad")
    label = f"{arrow} {abs(c) * 100:.0f}%" if abs(c) < 10 else f"{arrow} {abs(c):.0f}{TIMES}"
    return Markup('<span class="trend {}" title="against the previous window">{}</span>'
                  ).format(mood, label)


def sparkline(values: Sequence[float | None], label: str = "") -> Markup:
    """A small line of ``values`` (None: a gap) as inline SVG, labelled for screen readers."""
    points = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if len(points) < 2:
        return Markup("")
    lo = min(v for _, v in points)
    hi = max(v for _, v in points)
    span = (hi - lo) or 1.0
    width, height = 100.0, 24.0
    step = width / max(1, len(values) - 1)
    path = " ".join(f"{i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}"
                    for i, v in points)
    return Markup('<svg class="spark" viewBox="0 0 100 24" preserveAspectRatio="none" '
                  'role="img" aria-label="{}"><polyline points="{}"/></svg>'
                  ).format(label or "trend", path)


def ratio_series(top: Sequence[float], bottom: Sequence[float]) -> list[float | None]:
    return [t / b if b else None for t, b in zip(top, bottom, strict=True)]


def short(v: Any, n: int = 80) -> str:
    s = "" if v is None else str(v)
    return s if len(s) <= n else s[: n - 1] + "…"


FILTERS: dict[str, Any] = {"money": money, "pct": pct, "num": num, "ms": ms, "when": when,
                           "day": day, "short": short}
GLOBALS: dict[str, Any] = {"trend": trend, "sparkline": sparkline, "ratio_series": ratio_series,
                           "change": change}
