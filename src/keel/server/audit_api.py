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

from keel.server.admin import MAX_PAGE
from keel.server.auth import api_route
from keel.server.http import json_response, state_of
from keel.server.params import int_param, limit_param, text_param, time_param


async def list_entries(request: Request) -> Response:
    st = state_of(request)
    q = request.query_params
    rows, next_cursor = await st.audit.entries(
        since=time_param(q, "since"), until=time_param(q, "until"),
        action=text_param(q, "action", 64), limit=limit_param(q, 50, MAX_PAGE),
        before_seq=int_param(q, "cursor", None, lo=1, hi=2**62))
    return json_response({"object": "list", "data": rows,
                          "next_cursor": str(next_cursor) if next_cursor else None})


async def verify(request: Request) -> Response:
    st = state_of(request)
    report = await st.audit.verify()
    return json_response(report.to_json())


def routes() -> list[Route]:
    return [
        api_route("/api/audit", list_entries, ["GET"], "auditor"),
        api_route("/api/audit/verify", verify, ["GET"], "auditor"),
    ]
