"""``/api/prompts``: push versions, read, diff, move labels, roll back (reads: ``viewer``;
changes: ``operator``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.errors import InvalidRequest
from keel.gateway.validate import parse_body
from keel.prompts import PromptSpec, PromptSpecError
from keel.server.auth import api_route, claimed_actor, principal_of
from keel.server.http import json_response, read_body, state_of
from keel.server.params import path_param, str_field, text_param

LIMIT = 1024 * 1024
MAX_ACTOR = 128
MAX_MESSAGE = 10_000


def _actor(request: Request, body: dict[str, Any], field: str) -> str:
    """Who made the change, for the audit log (see :func:`claimed_actor`)."""
    return claimed_actor(principal_of(request), str_field(body, field, MAX_ACTOR))


async def push(request: Request) -> Response:
    st = state_of(request)
    body = parse_body(await read_body(request, LIMIT), LIMIT)
    message = str_field(body, "message", MAX_MESSAGE, one_line=False)
    author = _actor(request, body, "author")
    spec_data = {k: v for k, v in body.items() if k not in ("message", "author")}
    try:
        spec = PromptSpec.parse(spec_data, "body")
    except PromptSpecError as exc:
        raise InvalidRequest(str(exc)) from None
    version, created = await st.prompts.push(spec, message=message,
                                             author=author)
    return json_response({**version.public(st.prompts.labels_for(version)),
                          "created": created}, 201 if created else 200)


async def list_prompts(request: Request) -> Response:
    st = state_of(request)
    reg = st.prompts
    data = [{"name": n, "versions": len(reg.versions_of(n)), "labels": reg.labels_of(n)}
            for n in reg.names()]
    return json_response({"object": "list", "data": data})


async def show(request: Request) -> Response:
    st = state_of(request)
    v = st.prompts.resolve(path_param(request, "ref"))
    return json_response(v.public(st.prompts.labels_for(v)))


async def diff(request: Request) -> Response:
    st = state_of(request)
    q = request.query_params
    a, b = text_param(q, "from"), text_param(q, "to")
    if not a or not b:
        raise InvalidRequest("pass ?from=name@1&to=name@3", param="from")
    text = st.prompts.diff(a, b)
    return json_response({"from": a, "to": b, "diff": text})


async def label(request: Request) -> Response:
    st = state_of(request)
    body = parse_body(await read_body(request, LIMIT), LIMIT)
    version = body.get("version")
    if not (isinstance(version, int | str) and str(version)) or isinstance(version, bool):
        raise InvalidRequest("'version' is required: a version number or another label",
                             param="version")
    label = path_param(request, "label")
    ref = f"{path_param(request, 'name')}@{version}"
    old, new = await st.prompts.set_label(
        ref, label, actor=_actor(request, body, "actor"),
        reason=str_field(body, "reason", MAX_MESSAGE, one_line=False))
    return json_response({"label": label, "from_version": old, "to_version": new})


async def rollback(request: Request) -> Response:
    st = state_of(request)
    body = parse_body(await read_body(request, LIMIT), LIMIT) if \
        request.headers.get("content-length", "0") != "0" else {}
    name, lab = path_param(request, "name"), path_param(request, "label")
    was, now = await st.prompts.rollback(
        name, lab, actor=_actor(request, body, "actor"),
        reason=str_field(body, "reason", MAX_MESSAGE, one_line=False))
    return json_response({"name": name, "label": lab, "from_version": was, "to_version": now})


def routes() -> list[Route]:
    return [
        api_route("/api/prompts", push, ["POST"], "operator"),
        api_route("/api/prompts", list_prompts, ["GET"], "viewer"),
        api_route("/api/prompts/diff", diff, ["GET"], "viewer"),
        api_route("/api/prompts/{ref}", show, ["GET"], "viewer"),
        api_route("/api/prompts/{name}/labels/{label}", label, ["PUT"], "operator"),
        api_route("/api/prompts/{name}/labels/{label}/rollback", rollback, ["POST"],
                  "operator"),
    ]
