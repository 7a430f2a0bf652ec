"""Derived measures over any window, read from the rollups (never from raw traces).

Per group (overall, or by feature / team / model / prompt) over ``[since, until)``:
volume, availability (the non-error share), errors by type, latency and time-to-first-token
percentiles (merged sketches), tokens, cost, cost per request, cache hits and savings,
answers served after a failed or skipped attempt (fallbacks), traces a guardrail flagged or blocked;
from feedback: acceptance, rework, escalation and critical errors per 1k requests; from
outcomes: value units (the outcome named as the feature's ``value_unit``) and **cost per
value unit**; and the trend: unit cost in the second half of the window against the first,
next to the volume change ("is unit cost falling as volume grows?").

The window is aligned to the buckets of one granularity, chosen by its length (minutes up
to 6 hours, hours up to 8 days, days beyond); the response states the aligned window.

The percentiles are the costly part (a sketch is a row per index): a caller names the
sketches it shows (``sketches=("latency",)``, or ``()`` for none; the others' percentiles
are None), and when the filters and groups involve only feature and prompt they are read
from the coarse sketch level (``rollup_prompt_sketches``: the same counts added up over
teams and models, written with the full rows, for hour and day buckets;
keel.store.rollups), else the full one.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from keel import sketch
from keel.errors import InvalidRequest
from keel.store import Store
from keel.store.rollups import (
    FEEDBACK_COUNTERS,
    GRANULARITIES,
    PROMPT_GRANULARITIES,
    TRACE_COUNTERS,
)
from keel.store.schema import (
    rollup_errors,
    rollup_outcomes,
    rollup_prompt_sketches,
    rollup_sketches,
    rollups,
)

GROUPS = ("feature", "team", "model", "prompt")
COUNTERS = (*TRACE_COUNTERS, *FEEDBACK_COUNTERS)
QUANTILES = (0.5, 0.95, 0.99)
SKETCHES = ("latency", "ttft")
COARSE = ("feature", "prompt")  # the dimensions of the coarse sketch level


@dataclass(frozen=True, slots=True)
class Window:
    since: float
    until: float
    granularity: str

    @classmethod
    def aligned(cls, since: float, until: float) -> Window:
        if until <= since:
            raise InvalidRequest("'to' must be after 'from'", param="to")
        length = until - since
        g = "m" if length <= 6 * 3600 else "h" if length <= 8 * 86400 else "d"
        size = GRANULARITIES[g]
        return cls(math.floor(since / size) * size, math.ceil(until / size) * size, g)

    @property
    def middle(self) -> float:
        size = GRANULARITIES[self.granularity]
        return self.since + math.floor((self.until - self.since) / size / 2) * size


@dataclass(slots=True)
class Filters:
    feature: str | None = None
    team: str | None = None
    model: str | None = None
    prompt: str | None = None
    prompt_name: str | None = None  # every version of the prompt of this name


def sketch_table(filters: Filters, group_by: Iterable[str], granularity: str) -> sa.Table:
    """The sketch level that answers a query with these filters and groups at this
    granularity: the coarse one (per feature and prompt, hours and days) when neither
    involves team or model, else the full one."""
    used = {*group_by, *(n for n in GROUPS if getattr(filters, n) is not None)}
    coarse = used <= set(COARSE) and granularity in PROMPT_GRANULARITIES
    return rollup_prompt_sketches if coarse else rollup_sketches


def filter_conditions(table: sa.Table, f: Filters) -> list[Any]:
    """The filters' conditions on a rollup table (those of the columns it has)."""
    cond = []
    for name in GROUPS:
        v = getattr(f, name)
        if v is not None and name in table.c:
            cond.append(table.c[name] == v)
    if f.prompt_name is not None and "prompt" in table.c:
        cond.append(table.c.prompt.startswith(f.prompt_name + "@", autoescape=True))
    return cond


def sketch_metrics(sketches: Iterable[str]) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(sketches))
    for m in wanted:
        if m not in SKETCHES:
            raise InvalidRequest(f"no sketch '{m}'; use any of {', '.join(SKETCHES)}",
                                 param="sketches")
    return wanted


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _change(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before == 0:
        return None
    return (after - before) / before


async def summary(store: Store, since: float, until: float | None = None, *,
                  filters: Filters | None = None, group_by: tuple[str, ...] = (),
                  value_units: dict[str, str] | None = None,
                  sketches: Iterable[str] = SKETCHES) -> dict[str, Any]:
    """The measures per group. ``value_units`` maps a feature to its value unit's name;
    ``sketches`` names the sketches whose percentiles are read (the others' are None)."""
    for name in group_by:
        if name not in GROUPS:
            raise InvalidRequest(f"cannot group by '{name}'; use any of {', '.join(GROUPS)}",
                                 param="group_by")
    w = Window.aligned(since, until if until is not None else time.time())
    f = filters or Filters()
    value_units = value_units or {}
    metrics = sketch_metrics(sketches)

    def where(table: sa.Table) -> list[Any]:
        return [table.c.granularity == w.granularity, table.c.bucket >= w.since,
                table.c.bucket < w.until, *filter_conditions(table, f)]

    gcols = [rollups.c[name] for name in group_by]
    half = sa.case((rollups.c.bucket < w.middle, 0), else_=1).label("half")
    sums = [sa.func.sum(rollups.c[c]).label(c) for c in COUNTERS]
    q_main = sa.select(*gcols, half, *sums).where(*where(rollups)).group_by(*gcols, half)
    sk_table = sketch_table(f, group_by, w.granularity)
    sk = sk_table.c
    metric_cond = [sk.metric.in_(metrics)]  # the coarse key leads with the metric
    q_sk = (sa.select(*[sk[name] for name in group_by], sk.metric, sk.idx,
                      sa.func.sum(sk["count"]).label("n"))
            .where(*where(sk_table), *metric_cond)
            .group_by(*[sk[name] for name in group_by], sk.metric, sk.idx))
    er = rollup_errors.c
    q_err = (sa.select(*[er[name] for name in group_by], er.error_type,
                       sa.func.sum(er["count"]).label("n"))
             .where(*where(rollup_errors)).group_by(*[er[name] for name in group_by],
                                                     er.error_type))
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}

    def group(key: tuple[Any, ...]) -> dict[str, Any]:
        if key not in groups:
            groups[key] = {"halves": [defaultdict(float), defaultdict(float)],
                           "sketch": {"latency": [], "ttft": []}, "errors": {}}
        return groups[key]

    n = len(group_by)
    async with store.connect() as conn:
        for row in (await conn.execute(q_main)).all():
            halves = group(tuple(row[:n]))["halves"][int(row[n])]
            for c, v in zip(COUNTERS, row[n + 1:], strict=True):
                halves[c] += float(v or 0)
        if metrics:
            for row in (await conn.execute(q_sk)).all():
                group(tuple(row[:n]))["sketch"][row[n]].append((int(row[n + 1]),
                                                                 int(row[n + 2])))
        for row in (await conn.execute(q_err)).all():
            group(tuple(row[:n]))["errors"][row[n]] = int(row[n + 1])
        # value units: per feature (grouped by feature, or filtered to one feature)
        units_mode = bool(value_units) and f.team is None and f.model is None \
            and f.prompt is None and f.prompt_name is None and (group_by == ("feature",)
                                      or (not group_by and f.feature is not None))
        outcome_rows: list[Any] = []
        if units_mode:
            oc = rollup_outcomes.c
            half_o = sa.case((oc.bucket < w.middle, 0), else_=1).label("half")
            q_out = (sa.select(oc.feature, oc.name, half_o, sa.func.sum(oc.value))
                     .where(oc.granularity == w.granularity, oc.bucket >= w.since,
                            oc.bucket < w.until)
                     .group_by(oc.feature, oc.name, half_o))
            if f.feature is not None:
                q_out = q_out.where(oc.feature == f.feature)
            outcome_rows = list((await conn.execute(q_out)).all())
    value_by: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for feature, name, h, value in outcome_rows:
        if value_units.get(feature) == name:
            value_by[feature][int(h)] += float(value or 0)
    out_groups = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        feature = key[0] if group_by else f.feature
        units = value_by[feature] if units_mode and feature in value_units else None
        out_groups.append({**dict(zip(group_by, key, strict=True)),
                           **measures(groups[key], units)})
    return {"from": w.since, "to": w.until, "granularity": w.granularity,
            "group_by": list(group_by), "groups": out_groups}


def measures(g: dict[str, Any], units: list[float] | None) -> dict[str, Any]:
    first, second = g["halves"]
    t: dict[str, float] = defaultdict(float)
    for half in (first, second):
        for k, v in half.items():
            t[k] += v
    requests = t["requests"]
    judged = t["accepted"] + t["edited"] + t["rejected"] + t["escalated"]
    lat = sketch.quantiles(g["sketch"]["latency"], QUANTILES)
    ttft = sketch.quantiles(g["sketch"]["ttft"], QUANTILES)
    out: dict[str, Any] = {
        "requests": int(requests), "errors": int(t["errors"]),
        "availability": _ratio(requests - t["errors"], requests),
        "errors_by_type": dict(sorted(g["errors"].items(), key=lambda kv: -kv[1])),
        "latency_ms": {"p50": lat[0], "p95": lat[1], "p99": lat[2],
                       "mean": _ratio(t["latency_ms_sum"], requests - t["errors"])},
        "ttft_ms": {"p50": ttft[0], "p95": ttft[1], "p99": ttft[2]},
        "tokens": {"input": int(t["input_tokens"]), "output": int(t["output_tokens"]),
                   "cached": int(t["cached_tokens"]), "reasoning": int(t["reasoning_tokens"])},
        "cost_usd": t["cost_usd"], "cost_per_request_usd": _ratio(t["cost_usd"], requests),
        "cache_hits": int(t["cache_hits"]), "cost_saved_usd": t["cost_saved_usd"],
        "fallbacks": int(t["fallbacks"]),
        "guard": {"flagged": int(t["guard_flagged"]), "blocked": int(t["guard_blocked"])},
        "feedback": {
            "count": int(t["feedback"]), "thumbs_up": int(t["thumbs_up"]),
            "thumbs_down": int(t["thumbs_down"]), "accepted": int(t["accepted"]),
            "edited": int(t["edited"]), "rejected": int(t["rejected"]),
            "escalated": int(t["escalated"]), "critical_errors": int(t["critical_errors"])},
        "acceptance_rate": _ratio(t["accepted"], judged),
        "rework_rate": _ratio(t["edited"], judged),
        "mean_rework": _ratio(t["rework_sum"], t["rework_n"]),
        "escalation_rate": _ratio(t["escalated"], judged),
        "critical_errors_per_1k": (t["critical_errors"] * 1000 / requests) if requests else None,
    }
    if units is not None:
        total_units = units[0] + units[1]
        out["value_units"] = total_units
        out["cost_per_value_unit_usd"] = _ratio(t["cost_usd"], total_units)
    # the trend: the second half of the window against the first
    unit_before = _ratio(first["cost_usd"], units[0] if units else first["requests"])
    unit_after = _ratio(second["cost_usd"], units[1] if units else second["requests"])
    volume_before = units[0] if units else first["requests"]
    volume_after = units[1] if units else second["requests"]
    volume_change = _change(volume_before, volume_after)
    unit_change = _change(unit_before, unit_after)
    out["trend"] = {
        "unit": "value unit" if units else "request",
        "volume_change": volume_change, "unit_cost_change": unit_change,
        "unit_cost_falling_as_volume_grows": (
            None if volume_change is None or unit_change is None
            else volume_change > 0 and unit_change < 0),
    }
    return out
