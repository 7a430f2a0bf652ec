"""``GET /api/budgets``: every budget instance's spend in its current period (``viewer``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.server.auth import api_route
from keel.server.http import json_response, state_of


async def list_budgets_ep(request: Request) -> Response:
    st = state_of(request)
    rows = await st.limits.status() if st.limits is not None else []
    return json_response({"object": "list", "data": rows})


def routes() -> list[Route]:
    return [api_route("/api/budgets", list_budgets_ep, ["GET"], "viewer")]
