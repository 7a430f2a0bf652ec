"""A window against the one before it, per group, with each measure's series: the console's
overview (and the alert rules' baselines) in four rollup queries.

``compare`` reads ``[since - length, until)`` once, bucketed at one granularity, and returns
per group (one per feature, and the overall group ``""``) the measures of the current and
the previous window (``measures.measures``: the same numbers ``GET /api/metrics/summary``
gives) and per-bucket series of the counters, from which rates are drawn as sparklines.
Four queries whatever the window or the number of groups: counters per bucket, sketches per
side, errors per side, outcomes per bucket. ``sketches`` names the sketches a caller shows
(``()``: no sketch query, percentiles None); they are read from the coarse level (per
feature and prompt) when the grouping and the filters allow (``measures.sketch_table``).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from keel.errors import InvalidRequest
from keel.monitor.measures import (
    COUNTERS,
    GROUPS,
    SKETCHES,
    Filters,
    filter_conditions,
    measures,
    sketch_metrics,
    sketch_table,
)
from keel.store import Store
from keel.store.rollups import GRANULARITIES
from keel.store.schema import rollup_errors, rollup_outcomes, rollups

__all__ = ["Comparison", "GroupComparison", "compare", "granularity_for"]

OVERALL = ""


def granularity_for(length_s: float) -> str:
    """Buckets fine enough to draw a window's shape, coarse enough to stay few: minutes up
    to 2 hours, hours up to 2 days, days beyond."""
    return "m" if length_s <= 2 * 3600 else "h" if length_s <= 2 * 86400 else "d"


@dataclass(slots=True)
class GroupComparison:
    name: str  # the group's value ("" for the overall group)
    current: dict[str, Any]  # measures of [since, until)
    previous: dict[str, Any]  # measures of the window before it, of the same length
    # per bucket of [since, until): counter -> values, in bucket order
    series: dict[str, list[float]] = field(default_factory=dict)


@dataclass(slots=True)
class Comparison:
    since: float
    until: float
    granularity: str
    buckets: list[float]  # the current window's bucket starts
    groups: list[GroupComparison]  # the overall group first, then by name

    def group(self, name: str) -> GroupComparison | None:
        return next((g for g in self.groups if g.name == name), None)


def _blank() -> dict[str, Any]:
    return {"halves": [defaultdict(float), defaultdict(float)],
            "sketch": {"latency": defaultdict(int), "ttft": defaultdict(int)},
            "errors": defaultdict(int)}


async def compare(store: Store, since: float, until: float | None = None, *,
                  filters: Filters | None = None, group_by: str = "feature",
                  value_units: dict[str, str] | None = None,
                  sketches: Iterable[str] = SKETCHES) -> Comparison:
    """``[since, until)`` against the window of the same length before it, per value of
    ``group_by`` and overall. ``value_units`` maps a feature to its value unit's name (cost
    per value unit is given per feature, and overall when one feature is filtered);
    ``sketches`` names the sketches whose percentiles are read (the others' are None)."""
    if group_by not in GROUPS:
        raise InvalidRequest(f"cannot group by '{group_by}'; use any of {', '.join(GROUPS)}",
                             param="group_by")
    until = time.time() if until is None else until
    if until <= since:
        raise InvalidRequest("'to' must be after 'from'", param="to")
    g = granularity_for(until - since)
    size = GRANULARITIES[g]
    start = float(math.floor(since / size) * size)
    end = float(math.ceil(until / size) * size)
    n_buckets = max(1, round((end - start) / size))
    prev_start = start - n_buckets * size
    middle = [prev_start + (n_buckets // 2) * size, start + (n_buckets // 2) * size]
    f = filters or Filters()
    units_of = value_units or {}
    metrics = sketch_metrics(sketches)

    def where(table: sa.Table) -> list[Any]:
        return [table.c.granularity == g, table.c.bucket >= prev_start, table.c.bucket < end,
                *filter_conditions(table, f)]

    r = rollups.c
    q_counts = (sa.select(r[group_by], r.bucket, *[sa.func.sum(r[c]).label(c) for c in COUNTERS])
                .where(*where(rollups)).group_by(r[group_by], r.bucket))
    sk_table = sketch_table(f, (group_by,), g)
    sk = sk_table.c
    side_sk = sa.case((sk.bucket < start, 0), else_=1).label("side")
    metric_cond = [sk.metric.in_(metrics)]  # the coarse key leads with the metric
    q_sk = (sa.select(sk[group_by], side_sk, sk.metric, sk.idx, sa.func.sum(sk["count"]))
            .where(*where(sk_table), *metric_cond)
            .group_by(sk[group_by], side_sk, sk.metric, sk.idx))
    er = rollup_errors.c
    side_er = sa.case((er.bucket < start, 0), else_=1).label("side")
    q_err = (sa.select(er[group_by], side_er, er.error_type, sa.func.sum(er["count"]))
             .where(*where(rollup_errors)).group_by(er[group_by], side_er, er.error_type))
    units_wanted = bool(units_of) and f.team is None and f.model is None and f.prompt is None \
        and f.prompt_name is None and (group_by == "feature" or f.feature is not None)
    # per group, per side (0 previous, 1 current): what measures() takes
    acc: dict[str, list[dict[str, Any]]] = defaultdict(lambda: [_blank(), _blank()])
    series: dict[str, dict[str, list[float]]] = defaultdict(
        lambda: {c: [0.0] * n_buckets for c in COUNTERS})
    # per feature: value units per side and half, and per bucket of the current window
    units: dict[str, list[list[float]]] = defaultdict(lambda: [[0.0, 0.0], [0.0, 0.0]])
    unit_series: dict[str, list[float]] = defaultdict(lambda: [0.0] * n_buckets)
    async with store.connect() as conn:
        for row in (await conn.execute(q_counts)).all():
            name, b = row[0] or "", float(row[1])
            side = 0 if b < start else 1
            halves = acc[name][side]["halves"][0 if b < middle[side] else 1]
            i = round((b - start) / size)
            for c, v in zip(COUNTERS, row[2:], strict=True):
                value = float(v or 0)
                halves[c] += value
                if side == 1 and 0 <= i < n_buckets:
                    series[name][c][i] += value
        if metrics:
            for name, side, metric, idx, count in (await conn.execute(q_sk)).all():
                acc[name or ""][int(side)]["sketch"][metric][int(idx)] += int(count)
        for name, side, etype, count in (await conn.execute(q_err)).all():
            acc[name or ""][int(side)]["errors"][etype] += int(count)
        if units_wanted:
            oc = rollup_outcomes.c
            q_out = (sa.select(oc.feature, oc.name, oc.bucket, sa.func.sum(oc.value))
                     .where(oc.granularity == g, oc.bucket >= prev_start, oc.bucket < end)
                     .group_by(oc.feature, oc.name, oc.bucket))
            if f.feature is not None:
                q_out = q_out.where(oc.feature == f.feature)
            for feature, name, b, value in (await conn.execute(q_out)).all():
                if units_of.get(feature) != name:
                    continue
                b = float(b)
                side = 0 if b < start else 1
                units[feature][side][0 if b < middle[side] else 1] += float(value or 0)
                i = round((b - start) / size)
                if side == 1 and 0 <= i < n_buckets:
                    unit_series[feature][i] += float(value or 0)

    def units_for(feature: str | None) -> list[list[float]] | None:
        return units[feature] if units_wanted and feature in units_of else None

    overall = [_blank(), _blank()]
    overall_series = {c: [0.0] * n_buckets for c in COUNTERS}
    for name, sides in acc.items():
        for side in (0, 1):
            _merge(overall[side], sides[side])
        for c, values in series[name].items():
            overall_series[c] = [a + b for a, b in zip(overall_series[c], values, strict=True)]
    groups = [_group(OVERALL, overall, overall_series, units_for(f.feature),
                     unit_series.get(f.feature or ""))]
    for name in sorted(acc):
        u = units_for(name) if group_by == "feature" else None
        groups.append(_group(name, acc[name], series[name], u, unit_series.get(name)))
    buckets = [start + i * size for i in range(n_buckets)]
    return Comparison(start, end, g, buckets, groups)


def _merge(into: dict[str, Any], part: dict[str, Any]) -> None:
    for h in (0, 1):
        for c, v in part["halves"][h].items():
            into["halves"][h][c] += v
    for metric in ("latency", "ttft"):
        for idx, count in part["sketch"][metric].items():
            into["sketch"][metric][idx] += count
    for etype, count in part["errors"].items():
        into["errors"][etype] += count


def _measures(side: dict[str, Any], units: list[float] | None) -> dict[str, Any]:
    g = {"halves": side["halves"],
         "sketch": {m: list(side["sketch"][m].items()) for m in ("latency", "ttft")},
         "errors": dict(side["errors"])}
    return measures(g, units)


def _group(name: str, sides: list[dict[str, Any]], series: dict[str, list[float]],
           units: list[list[float]] | None, unit_series: list[float] | None) -> GroupComparison:
    out = GroupComparison(
        name=name,
        current=_measures(sides[1], units[1] if units is not None else None),
        previous=_measures(sides[0], units[0] if units is not None else None),
        series={c: list(v) for c, v in series.items()})
    if units is not None:
        out.series["value_units"] = list(unit_series or [0.0] * len(series["requests"]))
    return out
