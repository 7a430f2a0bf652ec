"""``/api/feedback`` and ``/api/outcomes``: feedback on traces, business outcomes.

Written and read by any key (``ANY_KEY``): a gateway key for its own team's traces (and its
feature's outcomes, if bound to one), a team-scoped role key its own team's; the admin key
and org-wide role keys read every team's (``Principal.visible_team``). To any other key,
another team's trace is a 404 like a missing one; client ids are per team.
Feedback is also written by browser-safe feedback keys, which may not read. A feedback key is
used from web pages, so ``/api/feedback`` speaks CORS: a preflight is answered for any origin
listed by an active feedback key (a preflight carries no credentials: a ``public_route``), and
the request itself must come from an origin of the key that authenticates it.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel import feedback as fb
from keel.errors import InvalidRequest, KeelError, PermissionDenied
from keel.feedback.service import check_feedback_source, may_see, outcome_attribution
from keel.gateway.validate import parse_body
from keel.keys.service import FEEDBACK_SCOPE
from keel.server.auth import ANY_KEY, api_route, principal_of, public_route
from keel.server.http import json_response, openai_error, read_body, state_of
from keel.server.params import MAX_ID_CHARS, limit_param, text_param, time_param
from keel.server.state import AppState
from keel.server.trace_lookup import (
    Visible,
    await_trace,
    await_trace_teams,
    feedback_wait_s,
    lookup_trace,
    not_stored_yet,
    still_unstored,
)
from keel.types import JSON, Principal

LIMIT = 1024 * 1024
MAX_PAGE = 500
ALLOW_HEADERS = "authorization, content-type, x-api-key"
PREFLIGHT_MAX_AGE = "600"


def _visible_to(principal: Principal) -> Visible:
    return lambda team: may_see(principal, team)


async def find_trace(st: AppState, principal: Principal, trace_id: str) -> JSON:
    """For a read: the trace from the writer's memory or the store, else 404 at once."""
    row = await lookup_trace(st, trace_id, visible=_visible_to(principal))
    if row is None:
        raise fb.unknown_trace(trace_id)  # the words another team's trace gets, too
    return row


async def await_trace_for(st: AppState, principal: Principal, trace_id: str) -> JSON:
    """For a write: the stored trace, waited for if it was answered a moment ago (here or on
    another replica); a 404 once ``KEEL_FEEDBACK_WAIT_S`` has passed without it."""
    wait_s = feedback_wait_s(st)
    visible = _visible_to(principal)
    row = await await_trace(st, trace_id, visible=visible, wait_s=wait_s)
    if row is not None:
        return row
    if still_unstored(st, [trace_id], visible):
        raise not_stored_yet([trace_id], wait_s)
    raise fb.unknown_trace(trace_id, wait_s)  # the words another team's trace gets, too


# --- CORS ------------------------------------------------------------------------------------


def _key_origins(st: AppState, principal: Principal | None) -> frozenset[str]:
    record = st.keys.record(principal.key_id) if principal is not None else None
    return record.origins if record is not None else frozenset()


def _with_cors(response: Response, st: AppState, origin: str | None,
               principal: Principal | None) -> Response:
    """Allow the browser to read the response only from an allowed origin: the key's own
    origins once authenticated, any feedback key's before (so auth errors are readable)."""
    if origin is None:
        return response
    response.headers["vary"] = "Origin"
    allowed = (st.keys.feedback_origins if principal is None
               else _key_origins(st, principal))
    if origin in allowed:
        response.headers["access-control-allow-origin"] = origin
    return response


def _check_origin(st: AppState, principal: Principal, origin: str | None) -> None:
    if principal.scope != FEEDBACK_SCOPE or origin is None:
        return
    if origin not in _key_origins(st, principal):
        raise PermissionDenied(
            f"origin '{origin}' may not use this feedback key; allow it when creating the "
            "key (`keel keys create --scope feedback --origin URL`)", code="origin_not_allowed")


async def feedback_preflight(request: Request) -> Response:
    st = state_of(request)
    origin = request.headers.get("origin")
    method = request.headers.get("access-control-request-method")
    if origin is None or origin not in st.keys.feedback_origins:
        err = PermissionDenied(
            f"origin '{origin}' is not allowed: no active feedback key lists it (create one "
            "with `keel keys create --scope feedback --origin URL`)", code="origin_not_allowed")
        return _with_cors(openai_error(err), st, origin, None)
    if method is not None and method.upper() != "POST":
        err = PermissionDenied(f"only POST is allowed cross-origin on /api/feedback, not "
                               f"{method}", code="method_not_allowed")
        return _with_cors(openai_error(err), st, origin, None)
    return Response(status_code=204, headers={
        "access-control-allow-origin": origin,
        "access-control-allow-methods": "POST, OPTIONS",
        "access-control-allow-headers": ALLOW_HEADERS,
        "access-control-max-age": PREFLIGHT_MAX_AGE,
        "vary": "Origin",
    })


# --- feedback --------------------------------------------------------------------------------


def _refuse_feedback(request: Request, exc: KeelError) -> Response:
    """A refused ``POST /api/feedback``, readable by the pages of any feedback key."""
    return _with_cors(openai_error(exc), state_of(request), request.headers.get("origin"), None)


async def post_feedback(request: Request) -> Response:
    st = state_of(request)
    origin = request.headers.get("origin")
    principal = principal_of(request)
    try:
        _check_origin(st, principal, origin)
        item = fb.parse_feedback(parse_body(await read_body(request, LIMIT), LIMIT))
        check_feedback_source(principal, item)
        trace = await await_trace_for(st, principal, item["trace_id"])
        out, created = await fb.record_feedback(st.store, principal, item, trace)
    except KeelError as exc:
        return _with_cors(openai_error(exc), st, origin, principal)
    return _with_cors(json_response(out, 201 if created else 200), st, origin, principal)


async def get_feedback(request: Request) -> Response:
    st = state_of(request)
    principal = principal_of(request)
    trace_id = text_param(request.query_params, "trace_id", MAX_ID_CHARS)
    if not trace_id:
        raise InvalidRequest("pass ?trace_id=<the trace's id>", param="trace_id")
    trace = await find_trace(st, principal, trace_id)
    data = await fb.feedback_for_trace(st.store, principal, trace)
    return json_response({"object": "list", "data": data})


# --- outcomes --------------------------------------------------------------------------------


async def post_outcome(request: Request) -> Response:
    st = state_of(request)
    principal = principal_of(request)
    now = time.time()
    item = fb.parse_outcome(parse_body(await read_body(request, LIMIT), LIMIT), now)
    outcome_attribution(principal, item)  # refused at once, before any wait
    ids: list[str] = item["trace_ids"] or []
    wait_s = feedback_wait_s(st)
    visible = _visible_to(principal)
    teams = await await_trace_teams(st, ids, visible=visible, wait_s=wait_s)
    if len(teams) < len(ids):
        unstored = still_unstored(st, [t for t in ids if t not in teams], visible)
        if unstored:
            raise not_stored_yet(unstored, wait_s)
    out, created = await fb.record_outcome(st.store, principal, item, teams, now,
                                           waited_s=wait_s)
    return json_response(out, 201 if created else 200)


async def get_outcomes(request: Request) -> Response:
    st = state_of(request)
    principal = principal_of(request)
    q = request.query_params
    data = await fb.list_outcomes(
        st.store, principal, feature=text_param(q, "feature"), name=text_param(q, "name"),
        since=time_param(q, "since"), until=time_param(q, "until"),
        limit=limit_param(q, 100, MAX_PAGE))
    return json_response({"object": "list", "data": data})


def routes() -> list[Route]:
    return [
        api_route("/api/feedback", post_feedback, ["POST"], ANY_KEY, scope=FEEDBACK_SCOPE,
                  refuse=_refuse_feedback),
        public_route("/api/feedback", feedback_preflight, ["OPTIONS"]),
        api_route("/api/feedback", get_feedback, ["GET"], ANY_KEY),
        api_route("/api/outcomes", post_outcome, ["POST"], ANY_KEY),
        api_route("/api/outcomes", get_outcomes, ["GET"], ANY_KEY),
    ]
