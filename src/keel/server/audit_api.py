"""``/api/audit`` (role ``auditor``): list the audit log, and verify it.

- ``GET /api/audit?since=&until=&action=&limit=&cursor=``: entries newest first;
  ``next_cursor`` pages on. ``action`` matches exactly, or a family ending in '.'.
- ``GET /api/audit/verify``: the verification report (``ok``, ``broken_seq``, ``problem``,
  the checkpoint covering the entries...); 200 either way, ``ok`` says.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.errors import InvalidRequest, KeelError
from keel.gateway.openai_api import json_response, openai_error, state_of
from keel.server.admin import MAX_PAGE, _float
from keel.server.auth import api_route


async def list_entries(request: Request) -> Response:
    try:
        st = state_of(request)
        q = request.query_params
        limit_raw = q.get("limit", "50")
        if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= MAX_PAGE:
            raise InvalidRequest(f"'limit' must be an integer from 1 to {MAX_PAGE}",
                                 param="limit")
        cursor = q.get("cursor") or None
        if cursor is not None and not cursor.isdigit():
            raise InvalidRequest("'cursor' must be the next_cursor of the previous page",
                                 param="cursor")
        rows, next_cursor = await st.audit.entries(
            since=_float(q, "since"), until=_float(q, "until"), action=q.get("action") or None,
            limit=int(limit_raw), before_seq=int(cursor) if cursor else None)
    except KeelError as exc:
        return openai_error(exc)
    return json_response({"object": "list", "data": rows,
                          "next_cursor": str(next_cursor) if next_cursor else None})


async def verify(request: Request) -> Response:
    try:
        st = state_of(request)
        report = await st.audit.verify()
    except KeelError as exc:
        return openai_error(exc)
    return json_response(report.to_json())


def routes() -> list[Route]:
    return [
        api_route("/api/audit", list_entries, ["GET"], "auditor"),
        api_route("/api/audit/verify", verify, ["GET"], "auditor"),
    ]
