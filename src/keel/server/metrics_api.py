"""``GET /api/metrics/summary``: derived measures over a window, from the rollups (``viewer``)."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.errors import InvalidRequest, KeelError
from keel.gateway.openai_api import json_response, openai_error, state_of
from keel.monitor.summary import Filters, summary
from keel.monitor.timeparse import parse_time
from keel.server.auth import api_route

DEFAULT_WINDOW_S = 86400.0


def _time(qp: Any, name: str, default: float) -> float:
    raw = qp.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse_time(raw)
    except ValueError as exc:
        raise InvalidRequest(f"'{name}': {exc}", param=name) from None


async def summary_ep(request: Request) -> Response:
    """``?feature=&team=&model=&prompt=&from=&to=&group_by=feature,model``; ``from``/``to``
    take epoch seconds, ISO times or durations back from now (``7d``); default: 24 hours."""
    try:
        st = state_of(request)
        qp = request.query_params
        until = _time(qp, "to", time.time())
        since = _time(qp, "from", until - DEFAULT_WINDOW_S)
        group_by = tuple(g.strip() for g in (qp.get("group_by") or "").split(",") if g.strip())
        filters = Filters(feature=qp.get("feature") or None, team=qp.get("team") or None,
                          model=qp.get("model") or None, prompt=qp.get("prompt") or None)
        units = {f.name: f.value_unit for f in st.config.features if f.value_unit}
        data = await summary(st.store, since, until, filters=filters, group_by=group_by,
                             value_units=units)
    except KeelError as exc:
        return openai_error(exc)
    return json_response(data)


def routes() -> list[Route]:
    return [api_route("/api/metrics/summary", summary_ep, ["GET"], "viewer")]
