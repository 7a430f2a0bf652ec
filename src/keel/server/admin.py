"""The admin API under /api: keys (role ``admin``) and traces (``viewer``). Each route declares
its role with :func:`keel.server.auth.api_route`, which authorises the caller first.

A team-scoped key lists and reads its own team's traces only: another team's trace is the
same 404 as a missing one, and ``?team=`` naming another team a 403 ``wrong_team``."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.errors import InvalidRequest, NotFound
from keel.feedback.service import may_see, team_filter
from keel.gateway.validate import parse_body
from keel.keys.service import create_key, public_record, revoke_key
from keel.server.auth import actor_of, api_route, principal_of
from keel.server.http import json_response, read_body, state_of
from keel.server.params import (
    cursor_param,
    limit_param,
    path_param,
    status_param,
    str_field,
    str_list_field,
    text_param,
    time_param,
)
from keel.server.trace_lookup import lookup_trace
from keel.store import keys as key_queries
from keel.store.traces import TraceFilter, list_traces
from keel.types import Principal

MAX_PAGE = 500
STATUSES = ("ok", "error")


async def create_key_ep(request: Request) -> Response:
    st = state_of(request)
    body = parse_body(await read_body(request, 64 * 1024), 64 * 1024)
    team = str_field(body, "team", 128)
    if not team:
        raise InvalidRequest("'team' is required: the team this key's spend belongs to",
                             param="team")
    models = str_list_field(body, "models")
    unknown = [m for m in models or () if m not in st.gateway.models]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" (and {len(unknown) - 5} more)"
                                          if len(unknown) > 5 else "")
        raise InvalidRequest(f"unknown model(s) {shown}; configured: "
                             f"{', '.join(st.gateway.models)}", param="models")
    override = body.get("feature_override", False)
    if not isinstance(override, bool):
        raise InvalidRequest("'feature_override' must be a boolean", param="feature_override")
    org_wide = body.get("org_wide")
    if org_wide is not None and not isinstance(org_wide, bool):
        raise InvalidRequest("'org_wide' must be a boolean: true for a role key that reads "
                             "every team's data (default: its own team's)", param="org_wide")
    key, record = await create_key(
        st.store, team=team, feature=str_field(body, "feature", 128), models=models,
        name=str_field(body, "name", 128), feature_override=override,
        scope=str_field(body, "scope", 64), origins=str_list_field(body, "origins"),
        role=str_field(body, "role", 64), org_wide=org_wide,
        actor=actor_of(principal_of(request)),
        audit=st.audit, ring=st.keys)  # valid on this replica at once
    return json_response({**record, "key": key}, 201)


async def list_keys_ep(request: Request) -> Response:
    rows = await key_queries.list_keys(state_of(request).store)
    return json_response({"object": "list", "data": [public_record(r) for r in rows]})


async def revoke_key_ep(request: Request) -> Response:
    st = state_of(request)
    key_id = path_param(request, "key_id")
    if not await revoke_key(st.store, key_id, actor=actor_of(principal_of(request)),
                            audit=st.audit, ring=st.keys):  # refused here at once
        raise NotFound(f"no active key with id '{key_id}'")
    return json_response({"id": key_id, "revoked": True})


def trace_filter(q: Mapping[str, str], principal: Principal) -> TraceFilter:
    return TraceFilter(feature=text_param(q, "feature"),
                       team=team_filter(principal, text_param(q, "team")),
                       model=text_param(q, "model"),
                       status=status_param(q, "status", STATUSES),
                       key_id=text_param(q, "key_id"), since=time_param(q, "since"),
                       until=time_param(q, "until"), request_id=text_param(q, "request_id"))


async def list_traces_ep(request: Request) -> Response:
    st = state_of(request)
    q = request.query_params
    rows, cursor = await list_traces(st.store, trace_filter(q, principal_of(request)),
                                     limit=limit_param(q, 50, MAX_PAGE),
                                     cursor=cursor_param(q))
    return json_response({"object": "list", "data": rows, "next_cursor": cursor})


async def get_trace_ep(request: Request) -> Response:
    st = state_of(request)
    trace_id = path_param(request, "trace_id")
    principal = principal_of(request)
    # answered a moment ago: from memory; another team's is as missing
    row = await lookup_trace(st, trace_id, visible=lambda team: may_see(principal, team))
    if row is None:
        raise NotFound(f"no trace with id '{trace_id}'")
    return json_response(row)


def routes() -> list[Route]:
    return [
        api_route("/api/keys", create_key_ep, ["POST"], "admin"),
        api_route("/api/keys", list_keys_ep, ["GET"], "admin"),
        api_route("/api/keys/{key_id}", revoke_key_ep, ["DELETE"], "admin"),
        api_route("/api/traces", list_traces_ep, ["GET"], "viewer"),
        api_route("/api/traces/{trace_id}", get_trace_ep, ["GET"], "viewer"),
    ]
