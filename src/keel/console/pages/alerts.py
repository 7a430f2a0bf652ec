"""Alerts: every rule series keel tracks (firing first) with its state, value and reason
in words, the silences and inhibition that hold for it, and the transitions of the last
days; operators silence what matches a rule, feature, team or model (with a reason and an
end), lift a silence, and evaluate the rules now.

The state is what the alert loop of ``keel serve`` stored at its last tick
(``keel.monitor.alerts.manager.current``); silences go through
``keel.monitor.alerts.silences`` as ``POST /api/alerts/silences`` does: checked, recorded in
the audit log with the caller as actor. A team's login sees its own team's series only.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response

from keel.config.alerts import AlertRule, duration_seconds
from keel.console.web import Action, Page, View, action, page
from keel.errors import InvalidRequest, KeelError, PermissionDenied
from keel.monitor.alerts import silences
from keel.monitor.alerts.manager import current
from keel.monitor.alerts.silences import MATCHER_KEYS
from keel.store.alerts import last_ticks, list_events, list_silences

__all__ = ["ACTIONS", "PAGES"]

PAGES: list[Page] = []
ACTIONS: list[Action] = []

DURATIONS = ("30m", "1h", "2h", "4h", "8h", "1d", "3d", "7d")
EVENTS_SHOWN = 50
EVENTS_SPAN_S = 7 * 86400.0
_PILL = {"alert": "bad", "warning": "warn", "ok": "ok", "no_data": "muted",
         "silenced": "muted"}


def _visible(view: View, series: dict[str, Any]) -> bool:
    team = view.team_scope
    f = view.filters
    return ((team is None or series.get("team") == team)
            and (f.feature is None or series.get("feature") in (None, f.feature))
            and (f.team is None or series.get("team") in (None, f.team))
            and (f.model is None or series.get("model") in (None, f.model)))


def _rule_row(rule: AlertRule) -> dict[str, Any]:
    """A rule as the page lists it: what it reads, over which window, against what."""
    s = rule.scope
    scope = ", ".join([f"{k}={v}" for k in ("feature", "team", "model")
                       if (v := getattr(s, k)) is not None]
                      + ([f"per {s.by}"] if s.by else [])
                      + ([f"within its {s.within}"] if s.within else [])) or "all traffic"
    levels = ", ".join(f"{name} {v:g}" for name, v in (("warning", rule.warning),
                                                         ("critical", rule.critical))
                       if v is not None)
    return {"name": rule.name, "builtin": rule.name.startswith("keel."),
            "measure": rule.measure, "kind": rule.kind, "window": rule.window,
            "scope": scope, "levels": f"{levels} ({rule.direction})",
            "min_sample": rule.min_sample, "for": rule.for_,
            "description": rule.description}


async def _alerts(view: View, *, error: str | None = None) -> Response:
    store = view.state.store
    rule = (view.request.query_params.get("rule") or "").strip()[:128] or None
    now = time.time()
    rows = [r for r in await current(store, now) if _visible(view, r["series"])
            and (rule is None or r["rule"] == rule)]
    events = [e for e in await list_events(store, since=now - EVENTS_SPAN_S,
                                           limit=EVENTS_SHOWN * 4)
              if _visible(view, e["evaluation"].get("series") or {})
              and (rule is None or e["rule"] == rule)][:EVENTS_SHOWN]
    team = view.team_scope
    active = [s for s in await list_silences(store, active_at=now)
              if team is None or s["matchers"].get("team") == team]
    ticks = await last_ticks(store, 1)
    manager = view.state.alerts
    rules = [_rule_row(r) for r in manager.rules] if manager else []
    counts = {p: sum(1 for r in rows if r["phase"] == p) for p in ("firing", "pending")}
    return view.render(
        "alerts.html", title="Alerts", rows=rows, events=events, silences=active,
        last_tick=ticks[0] if ticks else None, counts=counts, rule=rule, pill=_PILL,
        interval_s=manager.interval_s if manager else None,
        rules=rules, durations=DURATIONS,
        matcher_keys=MATCHER_KEYS, error=error, form=view.form, team=team,
        receivers=(view.state.dispatcher.status() if view.state.dispatcher is not None
                   and team is None else {}), filterbar=False)


@page(PAGES, "/alerts", "Alerts", "viewer")
async def alerts(view: View) -> Response:
    return await _alerts(view)


@action(ACTIONS, "/alerts/silence", "operator")
async def silence(view: View) -> Response:
    now = time.time()
    matchers = {k: v.strip() for k in MATCHER_KEYS if (v := view.form.get(k) or "").strip()}
    team = view.team_scope
    try:
        seconds = duration_seconds(view.form.get("duration") or "")
        if seconds is None:
            raise InvalidRequest(f"choose how long: one of {', '.join(DURATIONS)}",
                                 param="duration")
        row = silences.new_silence(matchers, creator=view.who,
                                   reason=view.form.get("reason"), starts_at=now,
                                   ends_at=now + seconds, now=now)
        silences.check_team(row, team)
    except (InvalidRequest, PermissionDenied) as exc:  # the page again, with what was typed
        return await _alerts(view, error=f"not silenced: {exc.message}")
    await silences.create(view.state.store, view.state.audit, row)
    said = ", ".join(f"{k}={v}" for k, v in row["matchers"].items())
    return view.back("/alerts", f"silenced {said} for {view.form.get('duration')}: matching "
                     "alerts are still evaluated and shown, and not notified")


@action(ACTIONS, "/alerts/lift", "operator")
async def lift(view: View) -> Response:
    silence_id = (view.form.get("silence") or "").strip()[:64]
    await silences.lift(view.state.store, view.state.audit, silence_id, by=view.who,
                        now=time.time(), team=view.team_scope)
    return view.back("/alerts", f"silence {silence_id} lifted: its alerts are notified again")


@action(ACTIONS, "/alerts/evaluate", "operator")
async def evaluate_now(view: View) -> Response:
    if view.team_scope is not None:
        raise PermissionDenied("evaluating every alert rule needs an org-wide login")
    manager = view.state.alerts
    if manager is None:
        raise KeelError("the alert loop is not running in this keel")
    result = await manager.tick()
    if result is None:
        return view.back("/alerts", "this tick was already evaluated; the page shows what "
                         "it found")
    return view.back("/alerts", f"evaluated {len(result.evaluations)} series: "
                     f"{len(result.transitions)} changed, {len(result.notifications)} "
                     "notifications sent")
