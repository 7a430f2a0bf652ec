"""``/api/evals``: eval runs, their per-case results, comparisons and regression events
(read-only: ``viewer``). Runs are produced by ``keel eval run|gate`` and by scheduled suites."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from keel.errors import NotFound
from keel.server.auth import api_route
from keel.server.http import json_response, state_of
from keel.server.params import (
    choice_param,
    limit_param,
    pair_param,
    path_param,
    text_param,
    time_param,
)
from keel.store import Store
from keel.store import evals as q

MAX_PAGE = 1000
STATUSES = ("passed", "failed", "errored")


def public_run(run: dict[str, Any]) -> dict[str, Any]:
    out = dict(run)
    out["config"] = orjson.loads(run["config"]) if run.get("config") else None
    out["summary"] = orjson.loads(run["summary"]) if run.get("summary") else None
    return out


async def _run(store: Store, run_id: str) -> dict[str, Any]:
    run = await q.get_run(store, run_id)
    if run is None:
        raise NotFound(f"no eval run '{run_id}'; GET /api/evals/runs lists them",
                       code="eval_run_not_found")
    return run


async def list_runs_ep(request: Request) -> Response:
    st = state_of(request)
    qp = request.query_params
    rows = await q.list_runs(st.store, suite=text_param(qp, "suite"),
                             group_id=text_param(qp, "group", 32),
                             limit=limit_param(qp, 50, MAX_PAGE))
    return json_response({"object": "list", "data": [public_run(r) for r in rows]})


async def get_run_ep(request: Request) -> Response:
    st = state_of(request)
    run = await _run(st.store, path_param(request, "run_id"))
    return json_response(public_run(run))


async def results_ep(request: Request) -> Response:
    """Per-case results, paged: ``?status=failed&limit=100&after=CASE_IDX:REPEAT``."""
    st = state_of(request)
    run = await _run(st.store, path_param(request, "run_id"))
    qp = request.query_params
    status = choice_param(qp, "status", STATUSES)
    after = pair_param(qp, "after", "CASE_IDX:REPEAT") or (-1, -1)
    limit = limit_param(qp, 100, MAX_PAGE)
    rows = await q.page_results(st.store, run["id"], status=status, after=after,
                                limit=limit)
    for row in rows:
        row["scores"] = orjson.loads(row["scores"])
    nxt = f"{rows[-1]['case_idx']}:{rows[-1]['repeat']}" if len(rows) == limit else None
    return json_response({"object": "list", "data": rows, "next_after": nxt})


async def report_ep(request: Request) -> Response:
    """The run's self-contained HTML report."""
    from keel.evals.report.files import run_html

    st = state_of(request)
    page = await run_html(st.store, path_param(request, "run_id"))
    return HTMLResponse(page)


async def events_ep(request: Request) -> Response:
    st = state_of(request)
    qp = request.query_params
    rows = await q.list_events(st.store, since=time_param(qp, "since"),
                               until=time_param(qp, "until"),
                               limit=limit_param(qp, 100, MAX_PAGE))
    for row in rows:
        row["detail"] = orjson.loads(row["detail"]) if row.get("detail") else None
    return json_response({"object": "list", "data": rows})


def routes() -> list[Route]:
    return [
        api_route("/api/evals/runs", list_runs_ep, ["GET"], "viewer"),
        api_route("/api/evals/runs/{run_id}", get_run_ep, ["GET"], "viewer"),
        api_route("/api/evals/runs/{run_id}/results", results_ep, ["GET"], "viewer"),
        api_route("/api/evals/runs/{run_id}/report.html", report_ep, ["GET"], "viewer"),
        api_route("/api/evals/events", events_ep, ["GET"], "viewer"),
    ]
