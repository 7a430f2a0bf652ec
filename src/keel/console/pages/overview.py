"""The overview: the leadership view. Per feature and overall, this window against the one
before it: quality, risk, economics, operations and adoption, each with its trend and a
sparkline, and a plain line for every number that moved beyond its usual range.

Read from the rollups (``keel.monitor.compare``: four queries whatever the traffic), plus
the held reviews and the configuration; never from raw traces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from keel.console.formats import DASH, change, money, pct, when
from keel.console.queries import evaluated_features
from keel.console.web import Page, View, page
from keel.monitor.compare import GroupComparison, compare
from keel.monitor.measures import Filters as MeasureFilters
from keel.store.reviews import ReviewFilter, count_reviews

PAGES: list[Page] = []

# A move is worth a line when the sample is big enough and the change is large: rates by
# at least five points, amounts by at least a fifth.
MIN_REQUESTS = 50
MIN_JUDGED = 20
RATE_POINTS = 0.05
AMOUNT_SHARE = 0.20


@dataclass(slots=True)
class Card:
    title: str
    value: str
    previous: str
    trend: tuple[Any, Any, str]  # before, after, which direction is good
    href: str | None = None
    spark: list[float | None] | None = None
    detail: str | None = None  # a line under the value


def _judged(m: dict[str, Any]) -> int:
    fb = m["feedback"]
    return int(fb["accepted"] + fb["edited"] + fb["rejected"] + fb["escalated"])


def _series_rate(g: GroupComparison, top: str, bottom: str) -> list[float | None]:
    t, b = g.series.get(top, []), g.series.get(bottom, [])
    return [x / y if y else None for x, y in zip(t, b, strict=True)]


def _judged_series(g: GroupComparison) -> list[float]:
    s = g.series
    return [a + e + r + x for a, e, r, x in zip(s["accepted"], s["edited"], s["rejected"],
                                                 s["escalated"], strict=True)]


def _rate(g: GroupComparison, name: str) -> list[float | None]:
    judged = _judged_series(g)
    return [v / j if j else None for v, j in zip(g.series[name], judged, strict=True)]


def cards(view: View, g: GroupComparison, held: int | None) -> dict[str, list[Card]]:
    cur, prev = g.current, g.previous
    feature = g.name or view.filters.feature
    traces = view.link("/traces", feature=feature)
    errors = view.link("/traces", feature=feature, status="error")
    out: dict[str, list[Card]] = {
        "Quality": [
            Card("Acceptance", pct(cur["acceptance_rate"]), pct(prev["acceptance_rate"]),
                 (prev["acceptance_rate"], cur["acceptance_rate"], "up"), traces,
                 _rate(g, "accepted")),
            Card("Rework", pct(cur["rework_rate"]), pct(prev["rework_rate"]),
                 (prev["rework_rate"], cur["rework_rate"], "down"), traces, _rate(g, "edited")),
            Card("Escalations", f"{cur['feedback']['escalated']:,}",
                 f"{prev['feedback']['escalated']:,}",
                 (prev["feedback"]["escalated"], cur["feedback"]["escalated"], "down"), traces,
                 list(g.series["escalated"])),
            Card("Critical errors / 1k", _fixed(cur["critical_errors_per_1k"]),
                 _fixed(prev["critical_errors_per_1k"]),
                 (prev["critical_errors_per_1k"], cur["critical_errors_per_1k"], "down"), traces,
                 _series_rate(g, "critical_errors", "requests")),
        ],
        "Risk": [
            Card("Guardrail blocks", f"{cur['guard']['blocked']:,}",
                 f"{prev['guard']['blocked']:,}",
                 (prev["guard"]["blocked"], cur["guard"]["blocked"], "none"), traces,
                 list(g.series["guard_blocked"])),
            Card("Guardrail flags", f"{cur['guard']['flagged']:,}",
                 f"{prev['guard']['flagged']:,}",
                 (prev["guard"]["flagged"], cur["guard"]["flagged"], "none"), traces,
                 list(g.series["guard_flagged"])),
        ],
        "Economics": [
            Card("Spend", money(cur["cost_usd"]), money(prev["cost_usd"]),
                 (prev["cost_usd"], cur["cost_usd"], "none"), traces, list(g.series["cost_usd"])),
            Card("Cost per request", money(cur["cost_per_request_usd"]),
                 money(prev["cost_per_request_usd"]),
                 (prev["cost_per_request_usd"], cur["cost_per_request_usd"], "down"), traces,
                 _series_rate(g, "cost_usd", "requests")),
        ],
        "Operations": [
            Card("Requests", f"{cur['requests']:,}", f"{prev['requests']:,}",
                 (prev["requests"], cur["requests"], "none"), traces, list(g.series["requests"])),
            Card("Availability", pct(cur["availability"], 2), pct(prev["availability"], 2),
                 (prev["availability"], cur["availability"], "up"), errors,
                 [1 - e / r if r else None for e, r in zip(
                     g.series["errors"], g.series["requests"], strict=True)]),
            Card("p95 latency", _ms(cur["latency_ms"]["p95"]), _ms(prev["latency_ms"]["p95"]),
                 (prev["latency_ms"]["p95"], cur["latency_ms"]["p95"], "down"), traces),
            Card("Errors", f"{cur['errors']:,}", f"{prev['errors']:,}",
                 (prev["errors"], cur["errors"], "down"), errors, list(g.series["errors"])),
            Card("Fallbacks taken", f"{cur['fallbacks']:,}", f"{prev['fallbacks']:,}",
                 (prev["fallbacks"], cur["fallbacks"], "down"), traces,
                 list(g.series["fallbacks"]),
                 detail="answers served after a failed or skipped attempt"),
        ],
    }
    checked = view.console.integrity.current()
    if checked is None:
        out["Risk"].append(Card("Audit log", "checking", "", (None, None, "none"),
                                "/governance" if view.may("auditor") else None))
    else:
        ok = checked.report.ok
        out["Risk"].append(Card(
            "Audit log", "intact" if ok else "BROKEN", "", (None, None, "none"),
            "/governance" if view.may("auditor") else None,
            detail=(f"{checked.report.entries:,} entries verified at {when(checked.at)}"
                    if ok else (checked.report.problem or "verification failed"))))
    if held is not None:
        out["Risk"].append(Card("Held for review", f"{held:,}" if held < 100 else "100+",
                                "", (None, None, "none"),
                                "/reviews" if view.may("reviewer") else None))
    if "cost_per_value_unit_usd" in cur:
        declared = view.state.config.feature(feature) if feature else None
        unit = declared.value_unit if declared is not None and declared.value_unit \
            else "value unit"
        out["Economics"].append(Card(
            f"Cost per {unit}", money(cur["cost_per_value_unit_usd"]),
            money(prev.get("cost_per_value_unit_usd")),
            (prev.get("cost_per_value_unit_usd"), cur["cost_per_value_unit_usd"], "down"),
            traces, _series_rate(g, "cost_usd", "value_units")))
        out["Economics"].append(Card(
            "Value units", f"{cur['value_units']:,.0f}", f"{prev.get('value_units', 0):,.0f}",
            (prev.get("value_units"), cur["value_units"], "up"), None,
            list(g.series.get("value_units", []))))
    return out


def _fixed(v: Any) -> str:
    return DASH if v is None else f"{v:.2f}"


def _ms(v: Any) -> str:
    return DASH if v is None else f"{v:,.0f} ms"


def moves(g: GroupComparison, label: str) -> list[str]:
    """Plain lines for the measures of ``g`` that moved beyond their usual range."""
    cur, prev = g.current, g.previous
    lines: list[str] = []
    enough = cur["requests"] >= MIN_REQUESTS and prev["requests"] >= MIN_REQUESTS
    judged = _judged(cur) >= MIN_JUDGED and _judged(prev) >= MIN_JUDGED
    for name, what, worse in (("rework_rate", "rework rate", "up"),
                              ("acceptance_rate", "acceptance rate", "down"),
                              ("escalation_rate", "escalation rate", "up")):
        a, b = prev.get(name), cur.get(name)
        if judged and a is not None and b is not None and abs(b - a) >= RATE_POINTS:
            verb = "rose" if b > a else "fell"
            bad = (b > a) == (worse == "up")
            lines.append(f"{label}: {what} {verb} from {pct(a)} to {pct(b)}"
                         f"{' — worse than the previous window' if bad else ''}.")
    a, b = prev.get("availability"), cur.get("availability")
    if enough and a is not None and b is not None and a - b >= 0.01:
        lines.append(f"{label}: availability fell from {pct(a, 2)} to {pct(b, 2)}.")
    for name, what in (("cost_per_request_usd", "cost per request"),
                       ("cost_per_value_unit_usd", "cost per value unit")):
        a, b = prev.get(name), cur.get(name)
        c = change(a, b)
        if enough and c is not None and abs(c) >= AMOUNT_SHARE:
            volume = change(prev["requests"], cur["requests"])
            at = "" if volume is None else (
                " at flat volume" if abs(volume) < 0.1 else
                f" while volume {'grew' if volume > 0 else 'fell'} {abs(volume) * 100:.0f}%")
            lines.append(f"{label}: {what} {'rose' if c > 0 else 'fell'} "
                         f"{abs(c) * 100:.0f}% ({money(a)} → {money(b)}){at}.")
    a95, b95 = prev["latency_ms"]["p95"], cur["latency_ms"]["p95"]
    c = change(a95, b95)
    if enough and c is not None and c >= 0.5:
        lines.append(f"{label}: p95 latency rose {c * 100:.0f}% ({_ms(a95)} → {_ms(b95)}).")
    return lines


@page(PAGES, "/", "Overview", "viewer")
async def overview(view: View) -> Response:
    since, until = view.filters.window()
    cfg = view.state.config
    units = {f.name: f.value_unit for f in cfg.features if f.value_unit}
    f = view.filters
    result = await compare(view.state.store, since, until,
                           filters=MeasureFilters(feature=f.feature, team=f.team, model=f.model),
                           group_by="feature", value_units=units, sketches=("latency",))
    held: int | None = None
    if view.may("reviewer") or view.may("auditor"):
        held = await count_reviews(view.state.store,
                                   ReviewFilter(status="pending", team=f.team, feature=f.feature),
                                   cap=100, now=view.state.reviews.clock())
    overall = result.groups[0]
    features = result.groups[1:]
    notes = moves(overall, f.feature or "Overall")
    for g in features:
        if not f.feature:
            notes += moves(g, g.name or "(no feature)")
    # adoption: features under an eval suite and under a review policy
    declared = [x.name for x in cfg.features]
    seen = sorted({*declared, *(g.name for g in features if g.name)})
    evaluated = await evaluated_features(view.state.store, since, until)
    reviewed = _reviewed_features(view, seen)
    adoption = {
        "features": len(seen),
        "evaluated": [n for n in seen if n in evaluated],
        "reviewed": [n for n in seen if n in reviewed],
    }
    return view.render("overview.html", title="Overview", result=result, overall=overall,
                       groups=features, cards=cards(view, overall, held), notes=notes,
                       adoption=adoption, units=units)


def _reviewed_features(view: View, names: list[str]) -> set[str]:
    """Features whose guardrail policy can hold answers for human review."""
    policies = view.state.gateway.policies
    out: set[str] = set()
    for name in names:
        policy = policies.for_request(name, None)
        if policy is not None and policy.review is not None:
            out.add(name)
    return out
