"""The costs admin API (reads: ``viewer``; repricing: ``operator``):

- ``GET /api/costs/spend?group_by=feature,day&from=&to=&team=&format=json|csv``: spend from
  the rollups (a team-scoped key: its own team's; another ``team`` is a 403 ``wrong_team``);
- ``POST /api/costs/reprice`` ``{"model", "since", "until"?, "dry_run"?, "actor"?}``:
  recompute stored traces' costs at the current price;
- ``GET /api/costs/events``: repricing events, newest first.

Repricing rewrites every team's traces of a model, and its events total them, so both need
an org-wide key (403 ``org_wide_required`` for a team-scoped one).
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.costs.reprice import event_json, reprice
from keel.costs.spend import SpendReport, parse_group_by, spend
from keel.errors import InvalidRequest
from keel.feedback.service import require_org_wide, team_filter
from keel.gateway.validate import parse_body
from keel.server.auth import api_route, claimed_actor, principal_of
from keel.server.http import json_response, read_body, state_of
from keel.server.params import (
    choice_param,
    limit_param,
    str_field,
    text_param,
    time_field,
    time_param,
)
from keel.server.state import AppState

DEFAULT_WINDOW_S = 7 * 86400


async def spend_ep(request: Request) -> Response:
    st = state_of(request)
    q = request.query_params
    now = time.time()
    fmt = choice_param(q, "format", ("json", "csv")) or "json"
    until = time_param(q, "to", now, now=now)
    assert until is not None
    since = time_param(q, "from", until - DEFAULT_WINDOW_S, now=now)
    assert since is not None
    team = team_filter(principal_of(request), text_param(q, "team"))
    report = await team_spend(st, since, until, parse_group_by(text_param(q, "group_by")), team)
    if fmt == "csv":
        return Response(report.to_csv(), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": 'attachment; filename="spend.csv"'})
    return json_response(report.to_json())


async def team_spend(st: AppState, since: float, until: float, group_by: tuple[str, ...],
                     team: str | None) -> SpendReport:
    """The spend report, of ``team`` alone when it is set: read per team, that team's rows
    kept (in the same order: the team is one value) and totalled again."""
    if team is None:
        return await spend(st.store, since, until, group_by)
    report = await spend(st.store, since, until, tuple(dict.fromkeys((*group_by, "team"))))
    rows = [{k: v for k, v in r.items() if k != "team" or "team" in group_by}
            for r in report.rows if r["team"] == team]
    total = {c: type(v)(sum(r[c] for r in rows)) for c, v in report.total.items()}
    return SpendReport(report.since, report.until, report.granularity, group_by, rows, total)


async def reprice_ep(request: Request) -> Response:
    st = state_of(request)
    require_org_wide(principal_of(request), "repricing")
    body = parse_body(await read_body(request, 64 * 1024), 64 * 1024)
    now = time.time()
    model = str_field(body, "model")
    if not model:
        raise InvalidRequest("'model' is required: the model whose traces to reprice",
                             param="model")
    since = time_field(body, "since", now=now)
    if since is None:
        raise InvalidRequest("'since' is required: reprice traces from this time on",
                             param="since")
    until = time_field(body, "until", now=now)
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise InvalidRequest("'dry_run' must be a boolean", param="dry_run")
    actor = str_field(body, "actor", 128)
    result = await reprice(st.store, st.config, model, since, until, dry_run=dry_run,
                           actor=claimed_actor(principal_of(request), actor),
                           audit=st.audit)
    return json_response(result.to_json())


async def events_ep(request: Request) -> Response:
    from keel.store.costs import list_events

    st = state_of(request)
    require_org_wide(principal_of(request), "the repricing events' totals")
    q = request.query_params
    rows = await list_events(st.store, model=text_param(q, "model"),
                             limit=limit_param(q, 100, 1000))
    return json_response({"object": "list", "data": [event_json(r) for r in rows]})


def routes() -> list[Route]:
    return [
        api_route("/api/costs/spend", spend_ep, ["GET"], "viewer"),
        api_route("/api/costs/reprice", reprice_ep, ["POST"], "operator"),
        api_route("/api/costs/events", events_ep, ["GET"], "viewer"),
    ]
