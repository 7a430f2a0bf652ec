"""The story's numbers, read back from the demo's store the way the console reads them:
measures from the rollups (``keel.monitor.measures``), traces and reviews through their
queries. ``keel demo`` prints them as what to look for; two loads with the same seed give
the same ones."""

from __future__ import annotations

import datetime as dt
from typing import Any

from keel.demo.story import (
    CHANGED_VERSION,
    CONTRACTS,
    DAY,
    FALLBACK_MODEL,
    FEATURES,
    PROMPTS,
    RESEARCH,
    STORY_REVIEWER,
    SUPPORT,
    Timeline,
)
from keel.monitor.measures import Filters, summary
from keel.store import Store
from keel.store import reviews as review_queries
from keel.store.traces import TraceFilter, list_traces

PAGE = 500


async def _traces(store: Store, f: TraceFilter) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page, cursor = await list_traces(store, f, limit=PAGE, cursor=cursor)
        rows += page
        if cursor is None:
            return rows


async def _reviews(store: Store, status: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page, cursor = await review_queries.list_reviews(
            store, review_queries.ReviewFilter(status=status, feature=CONTRACTS), limit=PAGE,
            cursor=cursor)
        rows += page
        if cursor is None:
            return rows


async def story_facts(store: Store, timeline: Timeline,
                      value_units: dict[str, str]) -> dict[str, Any]:
    tl = timeline
    month = await summary(store, tl.start, tl.end, group_by=("feature",),
                          value_units=value_units)
    by_feature = {g["feature"]: g for g in month["groups"]}
    out: dict[str, Any] = {
        "features": {f: {"requests": by_feature.get(f, {}).get("requests", 0),
                         "value_units": by_feature.get(f, {}).get("value_units")}
                     for f in FEATURES},
    }
    # (a) rework on support-reply before and after production moved to version 3
    prompts = await summary(store, tl.start, tl.end, filters=Filters(feature=SUPPORT),
                            group_by=("prompt",))
    by_prompt = {g["prompt"]: g for g in prompts["groups"]}
    name = PROMPTS[SUPPORT]
    before = by_prompt.get(f"{name}@{CHANGED_VERSION - 1}", {})
    after = by_prompt.get(f"{name}@{CHANGED_VERSION}", {})
    out["rework"] = {"changed_at": tl.prompt_change,
                     "before": before.get("rework_rate"), "after": after.get("rework_rate"),
                     "mean_before": before.get("mean_rework"),
                     "mean_after": after.get("mean_rework")}
    # (b) the outage: what the route did with the afternoon's requests
    during = await _traces(store, TraceFilter(since=tl.outage[0], until=tl.outage[1]))
    routed = [t for t in during if t["route"] is not None]
    outage_day = await summary(store, tl.outage[0], tl.outage[1])
    overall = outage_day["groups"][0] if outage_day["groups"] else {}
    out["outage"] = {"from": tl.outage[0], "to": tl.outage[1], "requests": len(routed),
                     "fallbacks": sum(t["model_served"] == FALLBACK_MODEL for t in routed),
                     "cached": sum(bool(t["cache_hit"]) for t in routed),
                     "failed": sum(t["status"] >= 500 for t in routed),
                     "availability": overall.get("availability")}
    # (c) the research assistant's cost per request, two weeks against the two before
    halves = []
    for since, until in ((tl.end - 28 * DAY, tl.creep_from), (tl.creep_from, tl.end)):
        s = await summary(store, since, until, filters=Filters(feature=RESEARCH))
        g = s["groups"][0] if s["groups"] else {}
        halves.append((g.get("requests", 0), g.get("cost_per_request_usd")))
    out["research"] = {"requests_before": halves[0][0], "requests_after": halves[1][0],
                       "cost_per_request_before": halves[0][1],
                       "cost_per_request_after": halves[1][1]}
    # (d) the blocked injection
    blocked = [t for t in await _traces(store, TraceFilter(
        feature=SUPPORT, since=tl.injection - DAY / 24, until=tl.injection + DAY / 24))
        if any(h.get("scanner") == "injection" and h.get("action") == "block"
               for h in t.get("guard") or ())]
    out["injection"] = {"at": tl.injection, "blocked": len(blocked),
                        "policy": blocked[0]["policy"] if blocked else None}
    # (e) the reviews
    rejected = await _reviews(store, "rejected")
    story = [r for r in rejected if r["decided_by"] == STORY_REVIEWER
             and "indemnity" in (r["decision_reason"] or "")]
    out["reviews"] = {
        "pending": len(await _reviews(store, "pending")),
        "approved": len(await _reviews(store, "approved")),
        "rejected": len(rejected), "expired": len(await _reviews(store, "expired")),
        "story_rejection": ({"by": story[0]["decided_by"], "reason": story[0]["decision_reason"],
                             "at": story[0]["decided_at"], "trace_id": story[0]["trace_id"]}
                            if story else None),
    }
    return out


def _day(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%a %d %b")


def _hm(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%H:%M")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _usd(x: float | None) -> str:
    return "-" if x is None else f"${x:.4f}"


def _change(rs: dict[str, Any]) -> str:
    before, after = rs["cost_per_request_before"], rs["cost_per_request_after"]
    return f" ({after / before - 1:+.0%})" if before and after else ""


def story_lines(f: dict[str, Any]) -> list[str]:
    """What happened this month, one line each, to look for in the console."""
    rw, out, rs, inj, rv = f["rework"], f["outage"], f["research"], f["injection"], f["reviews"]
    name = PROMPTS[SUPPORT]
    lines = [
        f"{_day(rw['changed_at'])}  {name}@{CHANGED_VERSION} went to production for "
        f"{SUPPORT}: rework rate {_pct(rw['before'])} before, {_pct(rw['after'])} since",
        f"{_day(out['from'])}  the primary provider failed {_hm(out['from'])}-{_hm(out['to'])} "
        f"UTC: of {out['requests']} requests, {out['fallbacks']} fell back to {FALLBACK_MODEL}, "
        f"{out['cached']} came from the cache, {out['failed']} failed",
        f"last 14 days  {RESEARCH} cost per request {_usd(rs['cost_per_request_before'])} -> "
        f"{_usd(rs['cost_per_request_after'])}{_change(rs)} at flat volume "
        f"({rs['requests_before']} -> {rs['requests_after']} requests a fortnight): longer "
        "prompts",
        f"{_day(inj['at'])}  a prompt injection in the help widget was blocked "
        f"({inj['blocked']} requests, policy {inj['policy']})",
    ]
    story = rv["story_rejection"]
    if story is not None:
        lines.append(f"{_day(story['at'])}  {story['by']} rejected a contract summary: "
                     f"\"{story['reason'][:60]}...\"")
    lines.append(f"now  {rv['pending']} contract summaries wait for a reviewer's decision")
    return lines
