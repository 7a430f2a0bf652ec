"""The costs admin API (reads: ``viewer``; repricing: ``operator``):

- ``GET /api/costs/spend?group_by=feature,day&from=&to=&format=json|csv``: spend from the
  rollups;
- ``POST /api/costs/reprice`` ``{"model", "since", "until"?, "dry_run"?, "actor"?}``:
  recompute stored traces' costs at the current price;
- ``GET /api/costs/events``: repricing events, newest first.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.costs.reprice import event_json, reprice
from keel.costs.spend import parse_group_by, spend
from keel.costs.times import FORMATS, parse_time
from keel.errors import InvalidRequest, KeelError
from keel.gateway.openai_api import json_response, openai_error, read_body, state_of
from keel.gateway.validate import parse_body
from keel.server.auth import api_route, claimed_actor, principal_of

DEFAULT_WINDOW_S = 7 * 86400


def _time(value: Any, name: str, now: float) -> float:
    try:
        return parse_time(value, now=now)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be {FORMATS}; got {value!r}", param=name) from None


async def spend_ep(request: Request) -> Response:
    try:
        st = state_of(request)
        q = request.query_params
        now = time.time()
        fmt = q.get("format", "json")
        if fmt not in ("json", "csv"):
            raise InvalidRequest(f"'format' must be json or csv, got {fmt!r}", param="format")
        until = _time(q["to"], "to", now) if q.get("to") else now
        since = _time(q["from"], "from", now) if q.get("from") else until - DEFAULT_WINDOW_S
        report = await spend(st.store, since, until, parse_group_by(q.get("group_by")))
    except KeelError as exc:
        return openai_error(exc)
    if fmt == "csv":
        return Response(report.to_csv(), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": 'attachment; filename="spend.csv"'})
    return json_response(report.to_json())


async def reprice_ep(request: Request) -> Response:
    try:
        st = state_of(request)
        body = parse_body(await read_body(request, 64 * 1024), 64 * 1024)
        now = time.time()
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("'model' is required: the model whose traces to reprice",
                                 param="model")
        if body.get("since") is None:
            raise InvalidRequest("'since' is required: reprice traces from this time on",
                                 param="since")
        since = _time(body["since"], "since", now)
        until = _time(body["until"], "until", now) if body.get("until") is not None else None
        dry_run = body.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise InvalidRequest("'dry_run' must be a boolean", param="dry_run")
        actor = body.get("actor")
        if actor is not None and not isinstance(actor, str):
            raise InvalidRequest("'actor' must be a string", param="actor")
        result = await reprice(st.store, st.config, model, since, until, dry_run=dry_run,
                               actor=claimed_actor(principal_of(request), actor),
                               audit=st.audit)
    except KeelError as exc:
        return openai_error(exc)
    return json_response(result.to_json())


async def events_ep(request: Request) -> Response:
    from keel.store.costs import list_events

    try:
        st = state_of(request)
        raw = request.query_params.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise InvalidRequest("'limit' must be an integer from 1 to 1000", param="limit")
        rows = await list_events(st.store, model=request.query_params.get("model"),
                                 limit=int(raw))
    except KeelError as exc:
        return openai_error(exc)
    return json_response({"object": "list", "data": [event_json(r) for r in rows]})


def routes() -> list[Route]:
    return [
        api_route("/api/costs/spend", spend_ep, ["GET"], "viewer"),
        api_route("/api/costs/reprice", reprice_ep, ["POST"], "operator"),
        api_route("/api/costs/events", events_ep, ["GET"], "viewer"),
    ]
