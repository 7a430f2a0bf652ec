"""``GET /api/metrics/summary``: derived measures over a window, from the rollups (``viewer``).

A team-scoped key reads its own team's measures only: the ``team`` filter is its team, and
naming another team is a 403 ``wrong_team``."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.feedback.service import team_filter
from keel.monitor.measures import Filters, summary
from keel.server.auth import api_route, principal_of
from keel.server.http import json_response, state_of
from keel.server.params import text_param, time_param

DEFAULT_WINDOW_S = 86400.0


async def summary_ep(request: Request) -> Response:
    """``?feature=&team=&model=&prompt=&from=&to=&group_by=feature,model``; ``from``/``to``
    take epoch seconds, ISO times or durations back from now (``7d``); default: 24 hours."""
    st = state_of(request)
    qp = request.query_params
    now = time.time()
    until = time_param(qp, "to", now, now=now)
    assert until is not None
    since = time_param(qp, "from", until - DEFAULT_WINDOW_S, now=now)
    assert since is not None
    group_by = tuple(g.strip() for g in (text_param(qp, "group_by") or "").split(",")
                     if g.strip())
    filters = Filters(feature=text_param(qp, "feature"),
                      team=team_filter(principal_of(request), text_param(qp, "team")),
                      model=text_param(qp, "model"), prompt=text_param(qp, "prompt"))
    units = {f.name: f.value_unit for f in st.config.features if f.value_unit}
    data = await summary(st.store, since, until, filters=filters, group_by=group_by,
                         value_units=units)
    return json_response(data)


def routes() -> list[Route]:
    return [api_route("/api/metrics/summary", summary_ep, ["GET"], "viewer")]
