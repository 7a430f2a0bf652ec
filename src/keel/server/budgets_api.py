"""``GET /api/budgets``: every budget instance's spend in its current period (``viewer``).

A team-scoped key sees its own team's budgets only: those of scope ``team`` for its team and
of scope ``key`` for its team's keys. A ``feature`` budget counts every team's spend on the
feature, so it is shown to org-wide keys only."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.server.auth import api_route, principal_of
from keel.server.http import json_response, state_of
from keel.server.state import AppState
from keel.store import keys as key_queries


async def _of_team(st: AppState, rows: list[dict[str, Any]], team: str) -> list[dict[str, Any]]:
    """The rows of ``team``'s budgets: its team budget and its keys' (revoked ones too)."""
    keys = ({r["id"] for r in await key_queries.list_keys(st.store) if r["team"] == team}
            if any(r["scope"] == "key" for r in rows) else set())
    return [r for r in rows if (r["scope"] == "team" and r["name"] == team)
            or (r["scope"] == "key" and r["name"] in keys)]


async def list_budgets_ep(request: Request) -> Response:
    st = state_of(request)
    rows = await st.limits.status() if st.limits is not None else []
    team = principal_of(request).visible_team()
    if team is not None:
        rows = await _of_team(st, rows, team)
    return json_response({"object": "list", "data": rows})


def routes() -> list[Route]:
    return [api_route("/api/budgets", list_budgets_ep, ["GET"], "viewer")]
