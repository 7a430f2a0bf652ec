"""Feature kill switches (reads: ``viewer``; stop and start: ``operator``):

- ``GET /api/features``: every feature ever stopped: state, since, by, reason.
- ``POST /api/features/{name}/stop`` with ``{"reason": "..."}`` (required): refuse the
  feature's requests (503 ``feature_stopped``) until it is started.
- ``POST /api/features/{name}/start``: serve it again.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.errors import InvalidRequest, KeelError
from keel.gateway.validate import parse_body
from keel.server.auth import actor_of, api_route, principal_of
from keel.server.http import json_response, read_body, state_of
from keel.server.params import path_param
from keel.server.state import AppState
from keel.switches import FeatureSwitches


def _switches(st: AppState) -> FeatureSwitches:
    if st.features is None:
        raise KeelError("feature switches are not running in this process")
    return st.features


async def list_ep(request: Request) -> Response:
    st = state_of(request)
    rows = await _switches(st).rows()
    return json_response({"object": "list", "data": rows})


async def switch_ep(request: Request) -> Response:
    st = state_of(request)
    name, verb = path_param(request, "name"), path_param(request, "verb")
    actor = actor_of(principal_of(request))
    if verb == "stop":
        raw = await read_body(request, 16 * 1024)
        body = parse_body(raw, 16 * 1024) if raw.strip() else {}
        row = await _switches(st).stop_feature(name, reason=body.get("reason"),
                                               actor=actor)
    elif verb == "start":
        row = await _switches(st).start_feature(name, actor=actor)
    else:
        raise InvalidRequest(f"unknown action '{verb}'; use stop or start", param="action")
    return json_response(row)


def routes() -> list[Route]:
    return [
        api_route("/api/features", list_ep, ["GET"], "viewer"),
        api_route("/api/features/{name}/{verb}", switch_ep, ["POST"], "operator"),
    ]
