"""``GET /api/budgets``: every budget instance's spend in its current period (``viewer``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.errors import KeelError
from keel.server.auth import api_route
from keel.server.http import json_response, openai_error, state_of


async def list_budgets_ep(request: Request) -> Response:
    try:
        st = state_of(request)
        rows = await st.limits.status() if st.limits is not None else []
    except KeelError as exc:
        return openai_error(exc)
    return json_response({"object": "list", "data": rows})


def routes() -> list[Route]:
    return [api_route("/api/budgets", list_budgets_ep, ["GET"], "viewer")]
