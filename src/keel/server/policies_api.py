"""``/api/policies``: the guardrail policies in force, and every version of each.

Policies are declared in the config (``policies:``); this API reads them. A trace names the
policy and version that governed it; ``GET /api/policies/{name}/versions/{version}`` shows
exactly what that version said.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.errors import NotFound
from keel.guard.policy import Policy
from keel.server.auth import api_route
from keel.server.http import json_response, state_of
from keel.server.params import path_param
from keel.store import policies as queries
from keel.types import JSON


def _public(p: Policy) -> JSON:
    return {"name": p.name, "version": p.version, "features": list(p.features),
            "routes": list(p.routes), "buffers_streams": p.holds_output,
            "input": [r.name for r in p.input], "output": [r.name for r in p.output],
            "spec": p.spec}


async def list_policies(request: Request) -> Response:
    st = state_of(request)
    return json_response({"object": "list",
                          "data": [_public(p) for p in st.gateway.policies.policies]})


async def policy_versions(request: Request) -> Response:
    st = state_of(request)
    name = path_param(request, "name")
    rows = await queries.list_versions(st.store, name)
    if not rows:
        raise NotFound(f"no policy named '{name}' has been in force; see GET /api/policies")
    current = st.gateway.policies.get(name)
    for row in rows:
        row["current"] = current is not None and current.version == row["version"]
    return json_response({"object": "list", "data": rows})


async def policy_version(request: Request) -> Response:
    st = state_of(request)
    name, version = path_param(request, "name"), path_param(request, "version")
    row = await queries.get_version(st.store, name, version)
    if row is None:
        raise NotFound(f"policy '{name}' has no version '{version}'; list them with "
                       f"GET /api/policies/{name}/versions")
    return json_response(row)


def routes() -> list[Route]:
    return [
        api_route("/api/policies", list_policies, ["GET"], "viewer"),
        api_route("/api/policies/{name}/versions", policy_versions, ["GET"], "viewer"),
        api_route("/api/policies/{name}/versions/{version}", policy_version, ["GET"], "viewer"),
    ]
