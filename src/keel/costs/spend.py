"""Spend: cost, requests and tokens per feature / team / model / prompt / day over a window,
read from the rollups (hourly rows for windows under two days, daily rows otherwise).

The window is aligned outwards to whole buckets of that granularity; the report states
the aligned window. Days are UTC days.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any

from keel.costs.times import day_label
from keel.errors import InvalidRequest
from keel.store import Store
from keel.store.costs import SPEND_SUMS, rollup_sums
from keel.store.rollups import GRANULARITIES

GROUPS = ("feature", "team", "model", "prompt", "day")
HOURLY_BELOW_S = 2 * 86400
_FLOATS = ("cost_usd", "cost_saved_usd")


def parse_group_by(text: str | None) -> tuple[str, ...]:
    """``"feature,day"`` -> ``("feature", "day")``; unknown or repeated names -> 400."""
    if not text:
        return ()
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for n in names:
        if n not in GROUPS:
            raise InvalidRequest(f"cannot group by '{n}'; use any of {', '.join(GROUPS)}",
                                 param="group_by")
    if len(set(names)) != len(names):
        raise InvalidRequest("group_by names a column twice", param="group_by")
    return names


@dataclass(slots=True)
class SpendReport:
    since: float
    until: float
    granularity: str  # h | d
    group_by: tuple[str, ...]
    rows: list[dict[str, Any]]
    total: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"object": "spend", "from": self.since, "to": self.until,
                "granularity": "hour" if self.granularity == "h" else "day",
                "group_by": list(self.group_by), "data": self.rows, "total": self.total}

    @property
    def columns(self) -> list[str]:
        return [*self.group_by, *SPEND_SUMS]

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        for row in self.rows:
            w.writerow([row[c] for c in self.columns])
        return buf.getvalue()


def _empty() -> dict[str, Any]:
    return {c: 0.0 if c in _FLOATS else 0 for c in SPEND_SUMS}


def _add(acc: dict[str, Any], row: dict[str, Any]) -> None:
    for c in SPEND_SUMS:
        v = row.get(c) or 0
        acc[c] += float(v) if c in _FLOATS else int(v)


async def spend(store: Store, since: float, until: float,
                group_by: tuple[str, ...] = ()) -> SpendReport:
    if until <= since:
        raise InvalidRequest("'to' must be after 'from'", param="to")
    g = "h" if until - since < HOURLY_BELOW_S else "d"
    size = GRANULARITIES[g]
    start, end = math.floor(since / size) * size, math.ceil(until / size) * size
    columns = [c for c in group_by if c != "day"]
    by_day = "day" in group_by
    raw = await rollup_sums(store, g, float(start), float(end), columns, by_day)
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    total = _empty()
    for r in raw:
        if not r.get("requests") and not r.get("cost_usd"):
            continue  # feedback-only rows
        labels = {c: r[c] for c in columns}
        if by_day:
            labels["day"] = day_label(float(r["bucket"]))
        key = tuple(labels[c] for c in group_by)
        acc = groups.get(key)
        if acc is None:
            acc = groups[key] = {**{c: labels[c] for c in group_by}, **_empty()}
        _add(acc, r)
        _add(total, r)
    rows = sorted(groups.values(), key=lambda x: (
        x.get("day", ""), -x["cost_usd"], *(str(x[c]) for c in columns)))
    return SpendReport(float(start), float(end), g, group_by, rows, total)
