"""Drift (reads: ``viewer``; checking now: ``operator``; org-wide keys only, since a report
holds example texts of every team's traffic):

- ``GET /api/drift``: each feature's latest drift report (verdict, classifier AUC, what
  drifted, its windows and sample sizes) and the schedule (``drift:``).
- ``GET /api/drift/{feature}``: the feature's latest report in full (every test with its
  statistic, threshold and n on both sides; the terms typical of each window; example
  trace ids) and its recent checks.
- ``POST /api/drift/{feature}/check``: check now (the ``drift:`` windows and sample size),
  store the report and return it.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.errors import KeelError, NotFound
from keel.feedback.service import require_org_wide
from keel.monitor.drift_schedule import DriftMonitor, features_of
from keel.server.auth import api_route, principal_of
from keel.server.http import json_response, state_of
from keel.server.params import limit_param, path_param
from keel.store.drift import STALE_LISTED_S, latest_reports, list_reports

_SUMMARY = ("id", "feature", "at", "drifted", "auc", "n_reference", "n_current",
            "reference_since", "reference_until", "current_since", "current_until")


def _monitor(request: Request) -> DriftMonitor:
    st = state_of(request)
    if st.drift is None:
        raise KeelError("drift checks are not running in this process")
    return st.drift


def summary(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in _SUMMARY}
    out["drifted_names"] = (row.get("report") or {}).get("drifted_names", [])
    return out


async def list_ep(request: Request) -> Response:
    require_org_wide(principal_of(request), "drift reports")
    st = state_of(request)
    now = time.time()
    latest = await latest_reports(st.store, since=now - STALE_LISTED_S, until=now)
    c = st.config.drift
    return json_response({
        "object": "list", "data": [summary(latest[f]) for f in sorted(latest)],
        "schedule": {"evaluate": c.evaluate, "interval_s": c.interval_s,
                     "current_s": c.current_s, "reference_s": c.reference_s,
                     "sample": c.sample, "features": features_of(st.config)}})


async def feature_ep(request: Request) -> Response:
    require_org_wide(principal_of(request), "drift reports")
    st = state_of(request)
    feature = path_param(request, "feature")
    rows = await list_reports(st.store, feature, limit=limit_param(request.query_params, 50,
                                                                   500))
    if not rows:
        raise NotFound(f"no drift check of feature '{feature}' yet; POST "
                       f"/api/drift/{feature}/check runs one")
    latest = (await list_reports(st.store, feature, limit=1, with_report=True))[0]
    return json_response({"feature": feature, "latest": latest, "checks": rows})


async def check_ep(request: Request) -> Response:
    require_org_wide(principal_of(request), "a drift check")
    feature = path_param(request, "feature")
    row = await _monitor(request).check(feature)
    return json_response(row)


def routes() -> list[Route]:
    return [
        api_route("/api/drift", list_ep, ["GET"], "viewer"),
        api_route("/api/drift/{feature}", feature_ep, ["GET"], "viewer"),
        api_route("/api/drift/{feature}/check", check_ep, ["POST"], "operator"),
    ]
