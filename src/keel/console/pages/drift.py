"""Drift: each feature's latest drift check (does its recent traffic look like its traffic
before?), and per feature the whole report: every descriptor's test with its statistic,
threshold and sample sizes, the terms typical of each window, example traces of each, and
the checks before. Operators check a feature now.

Reports come from ``keel.monitor.drift_schedule`` (scheduled in ``keel serve`` by the
``drift:`` section, or on demand here and at ``POST /api/drift/{feature}/check``). A report
holds example texts of every team's traffic, so a team's login is refused these pages.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response

from keel.console.web import Action, Page, View, action, page
from keel.errors import KeelError, NotFound, PermissionDenied
from keel.monitor.drift_schedule import features_of
from keel.store.drift import STALE_LISTED_S, latest_reports, list_reports

__all__ = ["ACTIONS", "PAGES"]

PAGES: list[Page] = []
ACTIONS: list[Action] = []

CHECKS_SHOWN = 30


def _org_wide(view: View) -> None:
    if view.team_scope is not None:
        raise PermissionDenied("drift reports hold example texts of every team's traffic: "
                               "log in with an org-wide key")


@page(PAGES, "/drift", "Drift", "viewer")
async def drift(view: View) -> Response:
    _org_wide(view)
    now = time.time()
    latest = await latest_reports(view.state.store, since=now - STALE_LISTED_S, until=now)
    names = features_of(view.state.config)
    names += sorted(f for f in latest if f not in names)
    rows = [{"feature": f, "report": latest.get(f)} for f in names]
    return view.render("drift.html", title="Drift", rows=rows, schedule=view.state.config.drift,
                       filterbar=False)


def _feature(view: View) -> str:
    return str(view.request.path_params["feature"])[:128]


@page(PAGES, "/drift/{feature}", "Drift of a feature", "viewer", nav=False)
async def drift_feature(view: View) -> Response:
    _org_wide(view)
    feature = _feature(view)
    checks = await list_reports(view.state.store, feature, limit=CHECKS_SHOWN)
    if not checks:
        if feature not in features_of(view.state.config):
            raise NotFound(f"no drift check of feature '{feature}' yet")
        latest: dict[str, Any] | None = None
    else:
        latest = (await list_reports(view.state.store, feature, limit=1,
                                     with_report=True))[0]
    return view.render("drift_feature.html", title=f"Drift of {feature}", feature=feature,
                       latest=latest, report=(latest or {}).get("report") or {},
                       checks=checks, filterbar=False)


@action(ACTIONS, "/drift/check", "operator")
async def check_now(view: View) -> Response:
    _org_wide(view)
    feature = (view.form.get("feature") or "").strip()[:128]
    monitor = view.state.drift
    if monitor is None:
        raise KeelError("drift checks are not running in this keel")
    if not feature:
        raise NotFound("name the feature to check")
    row = await monitor.check(feature)
    verdict = ("drifted" if row["drifted"] else "no drift found" if row["drifted"] is False
               else "too little data for a verdict")
    return view.back(f"/drift/{feature}", f"feature {feature} checked: {verdict}")
