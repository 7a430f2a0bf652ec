"""Alerts (reads: ``viewer``; silences and evaluating now: ``operator``):

- ``GET /api/alerts``: every tracked rule series with its state (``ok``, ``warning``,
  ``alert``, ``no_data``, ``silenced``), phase (``inactive``, ``pending``, ``firing``),
  value, reason, and the silences and inhibition that hold for it; firing first.
  ``?phase=firing`` (or pending, inactive), ``?rule=NAME``, ``?feature=NAME``; and each
  receiver's deliveries from this process (sent, failed, retrying, the last error).
- ``GET /api/alerts/events``: transitions (pending, firing, escalated, deescalated,
  resolved), newest first; ``?key=`` one series, ``?since=``, ``?limit=``.
- ``GET /api/alerts/silences``: silences, latest end first; ``?active=true``: in force now.
- ``POST /api/alerts/silences`` with ``{"matchers": {"feature": "support"}, "reason":
  "...", "duration": "2h"}`` (or ``"ends_at"``; ``"starts_at"`` defaults to now): 201 and
  the silence.
- ``DELETE /api/alerts/silences/{id}``: lift it now.
- ``POST /api/alerts/evaluate``: evaluate now, as a tick of the loop does, and say what was
  found and sent (``evaluated: false`` when another replica already took this tick).
- ``POST /api/alerts/test`` with ``{"rule": "NAME" or a rule as the config writes it,
  "since": "7d", "until": ..., "step": "1h"}``: the rule evaluated at every step of the
  period as the loop would have; per series its transitions, breaching and firing counts.
  Nothing is stored or sent.

A team's key sees the series of its team only, and may silence only with ``team`` set to
its team.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.config.alerts import AlertRule, duration_seconds
from keel.errors import InvalidRequest, KeelError, NotFound
from keel.feedback.service import require_org_wide
from keel.gateway.validate import parse_body
from keel.monitor.alerts import silences
from keel.monitor.alerts.backtest import backtest
from keel.monitor.alerts.builtin_rules import rules_for
from keel.monitor.alerts.manager import AlertManager, current
from keel.server.auth import actor_of, api_route, principal_of
from keel.server.http import json_response, read_body, state_of
from keel.server.params import (
    choice_param,
    limit_param,
    path_param,
    text_param,
    time_field,
    time_param,
)
from keel.store.alerts import last_ticks, list_events, list_silences

PHASES = ("firing", "pending", "inactive")
_BODY_MAX = 16 * 1024


def _manager(request: Request) -> AlertManager:
    st = state_of(request)
    if st.alerts is None:
        raise KeelError("the alert loop is not running in this process")
    return st.alerts


async def list_ep(request: Request) -> Response:
    st = state_of(request)
    q = request.query_params
    phase = choice_param(q, "phase", PHASES)
    rule, feature = text_param(q, "rule"), text_param(q, "feature")
    team = principal_of(request).visible_team()
    rows = await current(st.store)
    rows = [r for r in rows if (phase is None or r["phase"] == phase)
            and (rule is None or r["rule"] == rule)
            and (feature is None or r["series"].get("feature") == feature)
            and (team is None or r["series"].get("team") == team)]
    ticks = await last_ticks(st.store, 1)
    manager = st.alerts
    return json_response({
        "object": "list", "data": rows,
        "evaluation": {
            "interval_s": manager.interval_s if manager else None,
            "rules": len(manager.rules) if manager else 0,
            "last_tick": ticks[0] if ticks else None},
        # delivery per receiver since this process started: sent, failed, retrying, the
        # last error (another replica's deliveries are on its own status)
        "receivers": st.dispatcher.status() if st.dispatcher is not None else {}})


async def events_ep(request: Request) -> Response:
    st = state_of(request)
    q = request.query_params
    key = text_param(q, "key", 512)
    rows = await list_events(st.store, key=key, since=time_param(q, "since"),
                             limit=limit_param(q, 100, 1000))
    team = principal_of(request).visible_team()
    if team is not None:
        rows = [r for r in rows if r["evaluation"].get("series", {}).get("team") == team]
    return json_response({"object": "list", "data": rows})


async def silences_ep(request: Request) -> Response:
    st = state_of(request)
    q = request.query_params
    active = choice_param(q, "active", ("true", "false"))
    now = time.time()
    if request.method == "GET":
        rows = await list_silences(st.store, active_at=now if active == "true" else None)
        team = principal_of(request).visible_team()
        if team is not None:
            rows = [r for r in rows if r["matchers"].get("team") == team]
        return json_response({"object": "list", "data": rows})
    body = _body(await read_body(request, _BODY_MAX),
                 "matchers, reason and duration or ends_at")
    principal = principal_of(request)
    starts_at = time_field(body, "starts_at", now=now)
    starts = now if starts_at is None else starts_at
    ends_at = time_field(body, "ends_at", now=now)
    duration = body.get("duration")
    if (ends_at is None) == (duration is None):
        raise InvalidRequest("give the silence an end: either duration (e.g. \"2h\") or "
                             "ends_at, not both", param="duration")
    if duration is not None:
        seconds = duration_seconds(duration) if isinstance(duration, str) else None
        if seconds is None:
            raise InvalidRequest("duration is a whole number and a unit: 30m, 2h, 1d",
                                 param="duration")
        ends_at = starts + seconds
    assert ends_at is not None
    row = silences.new_silence(body.get("matchers"), creator=actor_of(principal),
                               reason=body.get("reason"), starts_at=starts, ends_at=ends_at,
                               now=now)
    silences.check_team(row, principal.visible_team())
    return json_response(await silences.create(st.store, st.audit, row), status=201)


def _body(raw: bytes, fields: str) -> dict[str, Any]:
    if not raw.strip():
        raise InvalidRequest(f"send a JSON object with {fields}")
    body = parse_body(raw, _BODY_MAX)
    return body


async def lift_ep(request: Request) -> Response:
    st = state_of(request)
    silence_id = path_param(request, "silence_id")
    principal = principal_of(request)
    row = await silences.lift(st.store, st.audit, silence_id, by=actor_of(principal),
                              now=time.time(), team=principal.visible_team())
    return json_response(row)


async def evaluate_ep(request: Request) -> Response:
    require_org_wide(principal_of(request), "evaluating the alert rules")
    result = await _manager(request).tick()
    if result is None:
        return json_response({"evaluated": False,
                              "reason": "this tick was already evaluated (here or by another "
                                        "replica); GET /api/alerts shows what it found"})
    return json_response({
        "evaluated": True, "tick": result.tick, "series": len(result.evaluations),
        "transitions": [{"key": t.key, "kind": t.kind, "severity": t.severity.value}
                        for t in result.transitions],
        "notifications": [{"group_key": n.group_key, "status": n.status,
                           "alerts": len(n.alerts)} for n in result.notifications]})


async def test_ep(request: Request) -> Response:
    require_org_wide(principal_of(request), "testing an alert rule")
    st = state_of(request)
    body = _body(await read_body(request, _BODY_MAX), "rule, since and step")
    spec = body.get("rule")
    if isinstance(spec, str):
        rule = next((r for r in rules_for(st.config.alerts) if r.name == spec), None)
        if rule is None:
            raise NotFound(f"no alert rule named '{spec[:128]}'; GET /api/alerts lists the "
                           "evaluated ones, or send the rule itself")
    elif isinstance(spec, dict):
        try:
            rule = AlertRule.model_validate(spec)
        except ValidationError as exc:
            raise InvalidRequest("rule: " + "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'rule'}: {e['msg']}"
                for e in exc.errors(include_url=False))[:2000], param="rule") from None
    else:
        raise InvalidRequest("rule is a rule's name or a rule as the config writes it",
                             param="rule")
    now = time.time()
    since = time_field(body, "since", now=now)
    if since is None:
        raise InvalidRequest("since is required: a time or a duration back such as 7d",
                             param="since")
    until = time_field(body, "until", now=now)
    step = body.get("step", "1h")
    step_s = duration_seconds(step) if isinstance(step, str) else None
    if step_s is None:
        raise InvalidRequest("step is a whole number and a unit: 5m, 1h, 1d", param="step")
    units = {f.name: f.value_unit for f in st.config.features if f.value_unit}
    result = await backtest(st.store, [rule], since, now if until is None else until,
                            step_s=step_s, value_units=units)
    return json_response({
        "rule": rule.name, "since": result.since, "until": result.until,
        "step_s": result.step_s, "steps": result.steps, "series": [{
            "key": h.key, "series": h.series, "evaluations": h.evaluations,
            "breaching": h.breaching, "firing": h.firing, "fired": h.fired,
            "transitions": [{"kind": t.kind, "at": t.at, "severity": t.severity.value}
                            for t in h.transitions]} for h in result.series]})


def routes() -> list[Route]:
    return [
        api_route("/api/alerts", list_ep, ["GET"], "viewer"),
        api_route("/api/alerts/events", events_ep, ["GET"], "viewer"),
        api_route("/api/alerts/silences", silences_ep, ["GET"], "viewer"),
        api_route("/api/alerts/silences", silences_ep, ["POST"], "operator"),
        api_route("/api/alerts/silences/{silence_id}", lift_ep, ["DELETE"], "operator"),
        api_route("/api/alerts/evaluate", evaluate_ep, ["POST"], "operator"),
        api_route("/api/alerts/test", test_ep, ["POST"], "viewer"),
    ]
