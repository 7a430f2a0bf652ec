"""The admin API under /api: keys (role ``admin``) and traces (``viewer``). Each route declares
its role with :func:`keel.server.auth.api_route`, which authorises the caller first."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.errors import InvalidRequest, KeelError, NotFound
from keel.gateway.openai_api import json_response, openai_error, read_body, state_of
from keel.gateway.validate import parse_body
from keel.keys.service import create_key, public_record, revoke_key
from keel.server.auth import actor_of, api_route, principal_of
from keel.store import keys as key_queries
from keel.store.traces import TraceFilter, get_trace, list_traces

MAX_PAGE = 500


def _str_list(body: dict[str, Any], name: str) -> list[str] | None:
    v = body.get(name)
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise InvalidRequest(f"'{name}' must be an array of non-empty strings", param=name)
    return list(v)


def _opt_str(body: dict[str, Any], name: str) -> str | None:
    v = body.get(name)
    if v is not None and not isinstance(v, str):
        raise InvalidRequest(f"'{name}' must be a string", param=name)
    return v


async def create_key_ep(request: Request) -> Response:
    try:
        st = state_of(request)
        body = parse_body(await read_body(request, 64 * 1024), 64 * 1024)
        team = _opt_str(body, "team")
        if not team:
            raise InvalidRequest("'team' is required: the team this key's spend belongs to",
                                 param="team")
        models = _str_list(body, "models")
        unknown = [m for m in models or () if m not in st.gateway.models]
        if unknown:
            raise InvalidRequest(f"unknown model(s) {', '.join(unknown)}; configured: "
                                 f"{', '.join(st.gateway.models)}", param="models")
        override = body.get("feature_override", False)
        if not isinstance(override, bool):
            raise InvalidRequest("'feature_override' must be a boolean", param="feature_override")
        key, record = await create_key(
            st.store, team=team, feature=_opt_str(body, "feature"), models=models,
            name=_opt_str(body, "name"), feature_override=override,
            scope=_opt_str(body, "scope"), origins=_str_list(body, "origins"),
            role=_opt_str(body, "role"), actor=actor_of(principal_of(request)), audit=st.audit)
        await st.keys.refresh()
    except KeelError as exc:
        return openai_error(exc)
    return json_response({**record, "key": key}, 201)


async def list_keys_ep(request: Request) -> Response:
    rows = await key_queries.list_keys(state_of(request).store)
    return json_response({"object": "list", "data": [public_record(r) for r in rows]})


async def revoke_key_ep(request: Request) -> Response:
    try:
        st = state_of(request)
        key_id = request.path_params["key_id"]
        if not await revoke_key(st.store, key_id, actor=actor_of(principal_of(request)),
                                audit=st.audit):
            raise NotFound(f"no active key with id '{key_id}'")
        await st.keys.refresh()
    except KeelError as exc:
        return openai_error(exc)
    return json_response({"id": key_id, "revoked": True})


def _float(q: Any, name: str) -> float | None:
    v = q.get(name)
    if v is None or v == "":
        return None
    try:
        return float(v)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be a UNIX timestamp in seconds, got {v!r}",
                             param=name) from None


def trace_filter(q: Any) -> TraceFilter:
    status = q.get("status")
    if status and status not in ("ok", "error") and not status.isdigit():
        raise InvalidRequest("'status' must be ok, error or an HTTP status code", param="status")
    return TraceFilter(feature=q.get("feature"), team=q.get("team"), model=q.get("model"),
                       status=status, key_id=q.get("key_id"), since=_float(q, "since"),
                       until=_float(q, "until"))


async def list_traces_ep(request: Request) -> Response:
    try:
        st = state_of(request)
        q = request.query_params
        limit_raw = q.get("limit", "50")
        if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= MAX_PAGE:
            raise InvalidRequest(f"'limit' must be an integer from 1 to {MAX_PAGE}",
                                 param="limit")
        rows, cursor = await list_traces(st.store, trace_filter(q), limit=int(limit_raw),
                                         cursor=q.get("cursor") or None)
    except KeelError as exc:
        return openai_error(exc)
    return json_response({"object": "list", "data": rows, "next_cursor": cursor})


async def get_trace_ep(request: Request) -> Response:
    try:
        st = state_of(request)
        trace_id = request.path_params["trace_id"]
        row = await get_trace(st.store, trace_id)
        if row is None and st.writer.pending:
            await st.writer.flush()
            row = await get_trace(st.store, trace_id)
        if row is None:
            raise NotFound(f"no trace with id '{trace_id}'")
    except KeelError as exc:
        return openai_error(exc)
    return json_response(row)


def routes() -> list[Route]:
    return [
        api_route("/api/keys", create_key_ep, ["POST"], "admin"),
        api_route("/api/keys", list_keys_ep, ["GET"], "admin"),
        api_route("/api/keys/{key_id}", revoke_key_ep, ["DELETE"], "admin"),
        api_route("/api/traces", list_traces_ep, ["GET"], "viewer"),
        api_route("/api/traces/{trace_id}", get_trace_ep, ["GET"], "viewer"),
    ]
