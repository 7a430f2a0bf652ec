"""Costs: spend over the window stacked by feature, team or model (a chart and the same
numbers as a table), unit economics per feature against the previous window, what changed
when cost per request moved, the budgets in their current period with their burn-down, and
the most expensive requests.

Read from the rollups (``keel.monitor.compare``: once by feature, once by model, and once
by team when the chart stacks teams), the budgets' counters (``Limits.status``), and one
or two bounded queries for the costliest traces (``keel.store.traces.costliest``); never a
scan of the traces.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from keel.console.formats import DASH, change, money, pct
from keel.console.web import Page, View, page
from keel.costs.prices import lookup
from keel.errors import InvalidRequest, LimitsUnavailable
from keel.limits.periods import period_bounds
from keel.monitor.compare import Comparison, GroupComparison, compare
from keel.monitor.measures import Filters as MeasureFilters
from keel.store import keys as key_queries
from keel.store.rollups import GRANULARITIES
from keel.store.traces import TraceFilter, costliest
from keel.types import Price

__all__ = ["PAGES", "Projection", "Totals", "project", "what_changed"]

PAGES: list[Page] = []

BY = ("feature", "team", "model")
MAX_SERIES = 8  # the chart stacks the costliest groups; the rest are one "other" series
COSTLIEST = 20
# what_changed: enough requests on each side, and a move worth explaining
MIN_REQUESTS = 20
MOVED = 0.05  # cost per request: a change of at least 5%
FLAT_VOLUME = 0.10  # volume within 10% is "flat"
SMALL_SHARE = 0.10  # a contributor under a tenth of the change is not worth naming
SECOND_SHARE = 0.25  # the other kind of tokens is named too from a quarter of the change
SHARE_POINTS = 0.05  # a share (of requests, of cache hits) moving less held steady


# --- what changed ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Totals:
    """One window's sums for one scope (the whole filter, or one model)."""

    requests: float = 0.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    cost_usd: float = 0.0
    cache_hits: float = 0.0

    @classmethod
    def of(cls, m: Mapping[str, Any]) -> Totals:
        """From the measures of ``keel.monitor.measures`` (a ``compare`` side)."""
        return cls(float(m["requests"]), float(m["tokens"]["input"]),
                   float(m["tokens"]["output"]), float(m["cost_usd"]), float(m["cache_hits"]))

    @property
    def per_request(self) -> float | None:
        return self.cost_usd / self.requests if self.requests else None

    @property
    def input_per_request(self) -> float:
        return self.input_tokens / self.requests if self.requests else 0.0

    @property
    def output_per_request(self) -> float:
        return self.output_tokens / self.requests if self.requests else 0.0

    @property
    def cache_rate(self) -> float:
        return self.cache_hits / self.requests if self.requests else 0.0


@dataclass(slots=True)
class _Effects:
    """The change in cost per request, split (in dollars per request) into: the model mix
    (requests moving between models of different cost), input and output tokens per
    request within each model (at its price), tokens of models whose price is unknown,
    and what none of them explains (prices, cache hits)."""

    mix: float = 0.0
    input: float = 0.0
    output: float = 0.0
    tokens: float = 0.0
    mover: str | None = None  # the model whose share moved cost per request the most
    mover_effect: float = 0.0
    shift: float = 0.0  # the largest move of one model's share of requests


def _effects(before: Totals, after: Totals, models: Mapping[str, tuple[Totals, Totals]],
             prices: Mapping[str, Price | None], delta: float) -> _Effects:
    e = _Effects()
    for name, (b, a) in sorted(models.items()):
        c1 = a.per_request
        c0 = b.per_request if b.requests else c1
        if c0 is None:
            continue
        c1 = c0 if c1 is None else c1
        s0, s1 = b.requests / before.requests, a.requests / after.requests
        mix = (s1 - s0) * c0
        e.mix += mix
        e.shift = max(e.shift, abs(s1 - s0))
        if mix * delta > 0 and abs(mix) > abs(e.mover_effect):
            e.mover, e.mover_effect = name, mix
        if not (a.requests and b.requests):
            continue
        di = a.input_per_request - b.input_per_request
        do = a.output_per_request - b.output_per_request
        price = prices.get(name)
        if price is not None and (price.input_per_mtok or price.output_per_mtok):
            e.input += s1 * di * price.input_per_mtok / 1e6
            e.output += s1 * do * price.output_per_mtok / 1e6
        else:  # unpriced here (a route name, say): tokens explain it if they moved with it
            within = s1 * (c1 - c0)
            tokens_before = b.input_per_request + b.output_per_request
            moved = change(tokens_before, tokens_before + di + do)
            if moved is not None and abs(moved) >= MOVED / 2 and moved * within > 0:
                e.tokens += within
    return e


def _share_of_spend(models: Mapping[str, tuple[Totals, Totals]], name: str,
                    before: Totals, after: Totals) -> tuple[float | None, float | None]:
    b, a = models[name]
    return (b.cost_usd / before.cost_usd if before.cost_usd else None,
            a.cost_usd / after.cost_usd if after.cost_usd else None)


def _volume(before: Totals, after: Totals) -> str:
    v = change(before.requests, after.requests)
    if v is None or abs(v) < FLAT_VOLUME:
        return "volume was flat"
    return f"volume {'grew' if v > 0 else 'fell'} {abs(v) * 100:.0f}%"


def _grew(x: float) -> str:
    return "grew" if x > 0 else "fell"


def what_changed(before: Totals, after: Totals, models: Mapping[str, tuple[Totals, Totals]],
                 prices: Mapping[str, Price | None]) -> tuple[str, bool]:
    """One plain sentence on how cost per request moved from the previous window
    (``before``) to this one (``after``) and what moved it most: input tokens per request
    (prompt length), output tokens per request (answer length), the model mix, or none of
    them; with the volume beside it. ``models`` holds each model's totals on both sides
    (``compare(group_by="model")``), ``prices`` each model's price (None: unknown).
    The flag says whether cost per request rose enough to look at."""
    if not after.requests:
        return "No requests in this window.", False
    if not before.requests:
        return "No requests in the previous window to compare this one with.", False
    if before.requests < MIN_REQUESTS or after.requests < MIN_REQUESTS:
        return (f"Too few requests to say what changed ({before.requests:,.0f} in the previous "
                f"window, {after.requests:,.0f} in this one; it takes {MIN_REQUESTS} in "
                "each).", False)
    if not before.cost_usd and not after.cost_usd:
        return ("Nothing was spent in either window: these requests' models have no price "
                "(give them one under models: in the config).", False)
    if not before.cost_usd:
        return "Nothing was spent in the previous window to compare this one with.", False
    c0, c1 = before.per_request or 0.0, after.per_request or 0.0
    cpr = change(c0, c1) or 0.0
    if abs(cpr) < MOVED:
        spend = change(before.cost_usd, after.cost_usd) or 0.0
        if abs(spend) >= FLAT_VOLUME:
            return (f"Spend {'rose' if spend > 0 else 'fell'} {abs(spend) * 100:.0f}% with the "
                    f"volume ({_volume(before, after)}); cost per request held at "
                    f"{money(c1)}.", False)
        return (f"Cost per request held at {money(c1)} ({money(c0)} before) and "
                f"{_volume(before, after)}.", False)
    delta = c1 - c0
    e = _effects(before, after, models, prices, delta)
    other = delta - (e.mix + e.input + e.output + e.tokens)
    parts = {"input": e.input, "output": e.output, "tokens": e.tokens, "mix": e.mix,
             "other": other}
    main = max(parts, key=lambda k: parts[k] * (1 if delta > 0 else -1))
    head = (f"Cost per request {'rose' if delta > 0 else 'fell'} {abs(cpr) * 100:.0f}% "
            f"({money(c0)} → {money(c1)}) while {_volume(before, after)}")
    t = _Tokens(before, after)
    if main == "other":
        clauses = [f"neither prompt length, answer length nor the model mix explains it "
                   f"({t.both})", _mix_state(e, models, before, after, delta),
                   _unexplained(before, after, delta)]
    elif main == "mix":
        tokens = e.input + e.output + e.tokens
        clauses = [f"the model mix moved {_mix(e.mover or '', models, before, after)}",
                   "tokens per request held steady" if abs(tokens) < SMALL_SHARE * abs(delta)
                   else t.both]
    else:
        clauses = [t.input if main == "input" else t.output if main == "output"
                   else f"tokens per request {_grew(t.i1 + t.o1 - t.i0 - t.o0)} ({t.both})"]
        second = e.output if main == "input" else e.input if main == "output" else 0.0
        if second * delta > 0 and abs(second) >= SECOND_SHARE * abs(delta):
            clauses.append("and " + (t.output if main == "input" else t.input))
        clauses.append(_mix_state(e, models, before, after, delta))
    return head + ": " + "; ".join(clauses) + ".", delta > 0


@dataclass(frozen=True, slots=True)
class _Tokens:
    """Tokens per request on both sides, said in words."""

    before: Totals
    after: Totals

    @property
    def i0(self) -> float:
        return self.before.input_per_request

    @property
    def i1(self) -> float:
        return self.after.input_per_request

    @property
    def o0(self) -> float:
        return self.before.output_per_request

    @property
    def o1(self) -> float:
        return self.after.output_per_request

    @property
    def input(self) -> str:
        return (f"input tokens per request {_grew(self.i1 - self.i0)} from {self.i0:,.0f} to "
                f"{self.i1:,.0f} (prompts got {'longer' if self.i1 > self.i0 else 'shorter'})")

    @property
    def output(self) -> str:
        return (f"output tokens per request {_grew(self.o1 - self.o0)} from {self.o0:,.0f} to "
                f"{self.o1:,.0f} (answers got {'longer' if self.o1 > self.o0 else 'shorter'})")

    @property
    def both(self) -> str:
        return (f"input tokens per request {self.i0:,.0f} → {self.i1:,.0f}, output "
                f"{self.o0:,.0f} → {self.o1:,.0f}")


def _mix(name: str, models: Mapping[str, tuple[Totals, Totals]], before: Totals,
         after: Totals) -> str:
    """``toward m1 (18% → 52% of requests, 40% → 81% of spend)``."""
    b, a = models.get(name, (Totals(), Totals()))
    s0, s1 = b.requests / before.requests, a.requests / after.requests
    sp0, sp1 = _share_of_spend(models, name, before, after) if name in models else (None, None)
    return (f"{'toward' if s1 > s0 else 'away from'} {name or '(no model)'} ({pct(s0, 0)} → "
            f"{pct(s1, 0)} of requests, {pct(sp0, 0)} → {pct(sp1, 0)} of spend)")


def _mix_state(e: _Effects, models: Mapping[str, tuple[Totals, Totals]], before: Totals,
               after: Totals, delta: float) -> str:
    if e.shift < SHARE_POINTS:
        return "the model mix did not change"
    if abs(e.mix) < SMALL_SHARE * abs(delta):
        return "the model mix moved, between models of about the same cost"
    if e.mix * delta > 0 and e.mover is not None:
        return f"the model mix added to it, moving {_mix(e.mover, models, before, after)}"
    return "the model mix offset part of it"


def _unexplained(before: Totals, after: Totals, delta: float) -> str:
    fewer_hits = before.cache_rate - after.cache_rate  # fewer free answers: dearer requests
    if abs(fewer_hits) >= SHARE_POINTS and fewer_hits * delta > 0:
        return (f"cache hits {'fell' if fewer_hits > 0 else 'rose'} from "
                f"{pct(before.cache_rate, 0)} to {pct(after.cache_rate, 0)} of requests")
    return "did a price change? (see the repricing events)"


def side_totals(g: GroupComparison) -> tuple[Totals, Totals]:
    return Totals.of(g.previous), Totals.of(g.current)


# --- the page --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Projection:
    """A budget's period so far: the share of it gone, where the straight line from nothing
    at its start to the limit at its end stands now, and the spend at its end if the rate
    so far goes on. Nones for a budget that never resets (there is no end to aim at)."""

    elapsed: float | None = None
    line: float | None = None
    projected: float | None = None
    over: bool = False  # the projection exceeds the limit
    limit_at: float | None = None  # when the limit is reached at this rate, if before the end


def project(spent: float, usd: float, start: float, end: float | None,
            now: float) -> Projection:
    if end is None or end <= start:
        return Projection()
    elapsed = min(max((now - start) / (end - start), 0.0), 1.0)
    if elapsed <= 0:
        return Projection(0.0, 0.0)
    projected = spent / elapsed
    over = projected > usd
    at = start + (now - start) * usd / spent if over and 0 < spent < usd else None
    return Projection(elapsed, usd * elapsed, projected, over, at)


@dataclass(slots=True)
class Burn:
    row: dict[str, Any]  # a row of Limits.status()
    plan: Projection
    href: str | None  # the traces of the period (a key's budget has no such list)


def _span(seconds: float) -> str:
    """A window's length as the filter's ranges write it: ``25h``, ``8d``, ``90m``."""
    for unit, size in (("d", 86400), ("h", 3600)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:.0f}{unit}"
    return f"{seconds / 60:.0f}m"


def _by(view: View) -> str:
    raw = (view.request.query_params.get("by") or "feature").strip()
    if raw not in BY:
        raise InvalidRequest(f"'by' is one of {', '.join(BY)}", param="by")
    return raw


def _bucket_link(view: View, start: float, size: float, **group: str | None) -> str:
    """The traces of one bucket (of one group: ``feature="support"``), in the filter."""
    return view.link("/traces", **group, **{"from": f"{start:.0f}", "to": f"{start + size:.0f}"})


def spend_table(view: View, result: Comparison, by: str) -> dict[str, Any]:
    """The chart's spec and the same numbers as rows: per bucket, each group's spend."""
    groups = sorted((g for g in result.groups[1:] if any(g.series["cost_usd"])),
                    key=lambda g: (-sum(g.series["cost_usd"]), g.name))
    shown, rest = groups[:MAX_SERIES], groups[MAX_SERIES:]
    size = float(GRANULARITIES[result.granularity])
    columns = [g.name or f"(no {by})" for g in shown] + (["other"] if rest else [])
    series = [{"label": label, "values": [round(v, 6) for v in g.series["cost_usd"]]}
              for label, g in zip(columns, shown, strict=False)]
    other = [float(sum(g.series["cost_usd"][i] for g in rest))
             for i in range(len(result.buckets))]
    if rest:
        series.append({"label": "other", "values": [round(v, 6) for v in other]})
    rows = []
    for i, b in enumerate(result.buckets):
        cells: list[tuple[float, str | None]] = [
            (g.series["cost_usd"][i], _bucket_link(view, b, size, **{by: g.name or None}))
            for g in shown]
        if rest:
            cells.append((other[i], None))
        total = result.groups[0].series["cost_usd"][i]
        rows.append({"start": b, "cells": cells,
                     "total": (total, _bucket_link(view, b, size))})
    spec = {"x": [int(b) for b in result.buckets], "series": series, "stacked": True,
            "unit": "$"}
    return {"spec": spec, "columns": columns, "rows": rows, "granularity": result.granularity}


async def _visible_budgets(view: View) -> list[dict[str, Any]] | None:
    """The budget rows the caller may see (as ``GET /api/budgets`` gives them); None when
    this keel runs no limits."""
    limits = view.state.limits
    if limits is None:
        return None
    rows = await limits.status()
    team = view.team_scope
    if team is None:
        return rows
    keys: set[str] = set()
    if any(r["scope"] == "key" for r in rows):
        keys = {k["id"] for k in await key_queries.list_keys(view.state.store)
                if k["team"] == team}
    return [r for r in rows if (r["scope"] == "team" and r["name"] == team)
            or (r["scope"] == "key" and r["name"] in keys)]


def burn(view: View, row: dict[str, Any], now: float) -> Burn:
    start, end = period_bounds(row["period"], now)
    since = {"from": f"{start:.0f}", "to": None, "range": None, "model": None}
    href = (view.link("/traces", team=row["name"], feature=None, **since)
            if row["scope"] == "team" else
            view.link("/traces", feature=row["name"], team=None, **since)
            if row["scope"] == "feature" else None)
    return Burn(row, project(float(row["spent"]), float(row["usd"]), start, end, now), href)


@page(PAGES, "/costs", "Costs", "viewer")
async def costs(view: View) -> Response:
    since, until = view.filters.window()
    by = _by(view)
    f = view.filters
    cfg = view.state.config
    units = {x.name: x.value_unit for x in cfg.features if x.value_unit}
    mf = MeasureFilters(feature=f.feature, team=f.team, model=f.model)
    store = view.state.store
    # the page shows no latency: no sketches read
    features = await compare(store, since, until, filters=mf, group_by="feature",
                             value_units=units, sketches=())
    models = await compare(store, since, until, filters=mf, group_by="model", sketches=())
    stacked = features if by == "feature" else models if by == "model" else await compare(
        store, since, until, filters=mf, group_by="team", sketches=())
    overall = features.groups[0]
    before, after = side_totals(models.groups[0])
    by_model = {g.name: side_totals(g) for g in models.groups[1:]}
    prices = {name: lookup(name, cfg) for name in by_model if name}
    sentence, rose = what_changed(before, after, by_model, prices)
    top = await costliest(store, TraceFilter(feature=f.feature, team=f.team, model=f.model,
                                             since=since, until=until), COSTLIEST,
                          expected=int(overall.current["requests"]))
    budgets_error: str | None = None
    burns: list[Burn] | None = None
    try:
        rows = await _visible_budgets(view)
    except LimitsUnavailable as exc:
        rows, budgets_error = [], exc.message
    if rows is not None:
        now = time.time()
        burns = [burn(view, r, now) for r in rows]
    return view.render(
        "costs.html", title="Costs", by=by, bys=BY, overall=overall, groups=features.groups[1:],
        window=(features.since, features.until), span=_span(features.until - features.since),
        units=units, chart=spend_table(view, stacked, by), sentence=sentence, rose=rose,
        costliest=top, burns=burns, budgets_error=budgets_error, dash=DASH,
        units_shown=f.team is None and f.model is None, extra_query=[("by", by)]
        if by != "feature" else [], traces=view.link("/traces"))
