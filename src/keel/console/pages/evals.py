"""Evals: the dashboard of suites (each one's latest run, pass rate and the trend over its
recent runs, and the latest regression events); one run's page (what it ran, its counts,
cost and latency, the pass rate per scorer, its failed cases); and the comparison of two
runs with the cases that flipped and the gate's verdict (``keel.evals.compare``: the same
comparison and rule as ``keel eval compare`` and ``keel eval gate``).

Eval runs belong to no team, as on ``/api/evals``: every console role may read them.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.responses import Response

from keel.console.web import Action, Page, View, page
from keel.errors import InvalidRequest, NotFound
from keel.evals.compare import GATE_RULE, compare_runs, gate_verdict
from keel.evals.suite import GateSpec
from keel.store import evals as q

PAGES: list[Page] = []
ACTIONS: list[Action] = []

MAX_SUITES = 50
RUNS_PER_SUITE = 20  # the trend's length
MAX_EVENTS = 10
PICK_RUNS = 50  # runs offered by the compare forms
FAILED_PAGE = 50  # failed cases shown at a time
MAX_OUTPUT = 400  # characters of a case's answer shown


def _json(text: Any) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def pass_rate(run: dict[str, Any]) -> float | None:
    """Passed executions over all executions (the runner's summary ``pass_rate``)."""
    n = run.get("executions") or 0
    return (run.get("passed") or 0) / n if n else None


def _run_ref(raw: str, param: str) -> str:
    ref = raw.strip().lower()
    if not ref or len(ref) > 32 or any(c not in "0123456789abcdef" for c in ref):
        raise NotFound(f"no eval run '{raw[:40]}': a run is named by its id (or the start of "
                       "it), as the evals page lists them", param=param)
    return ref


async def _run(view: View, raw: str, param: str) -> dict[str, Any]:
    """A run by id, or by a unique start of its id."""
    ref = _run_ref(raw, param)
    store = view.state.store
    if len(ref) < 32:
        ids = await q.find_runs(store, ref)
        if len(ids) > 1:
            raise InvalidRequest(f"more than one eval run starts with '{ref}'; give more of "
                                 "its id", param=param)
        ref = ids[0] if ids else ref
    run = await q.get_run(store, ref)
    if run is None:
        raise NotFound(f"no eval run '{ref}'; the evals page lists them", param=param)
    return run


def _after(view: View) -> tuple[int, int] | None:
    raw = (view.request.query_params.get("after") or "").strip()
    if not raw:
        return None
    idx, sep, rep = raw.partition(":")
    if not (sep and idx.isascii() and idx.isdigit() and rep.isascii() and rep.isdigit()
            and len(raw) <= 24):
        raise InvalidRequest("'after' is CASE:REPEAT, as the 'More failed cases' link "
                             "carries it", param="after")
    return int(idx), int(rep)


def _failures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The scores of a result that did not pass, for display."""
    try:
        scores = orjson.loads(result.get("scores") or "[]")
    except orjson.JSONDecodeError:
        return []
    return [s for s in scores if isinstance(s, dict) and s.get("passed") is not True]


def _picks(runs: list[dict[str, Any]], *chosen: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Runs a compare form offers: the recent ones, and those already chosen."""
    seen = {r["id"] for r in runs}
    return runs + [r for r in chosen if r is not None and r["id"] not in seen]


@page(PAGES, "/evals", "Evals", "viewer")
async def suites_page(view: View) -> Response:
    store = view.state.store
    suites = await q.recent_suites(store, limit=MAX_SUITES)
    runs = await q.latest_runs_of(store, [s["suite"] for s in suites], per_suite=RUNS_PER_SUITE)
    by_suite: dict[str, list[dict[str, Any]]] = {}
    for run in runs:  # newest first within a suite
        by_suite.setdefault(run["suite"], []).append(run)
    rows = []
    for s in suites:
        recent = by_suite.get(s["suite"], [])
        if not recent:
            continue
        latest = recent[0]
        thresholds = _json(latest.get("summary")).get("thresholds") or {}
        rows.append({"suite": s["suite"], "runs": s["runs"], "latest": latest,
                     "pass_rate": pass_rate(latest), "thresholds": thresholds,
                     "trend": [pass_rate(r) for r in reversed(recent)],
                     "previous": pass_rate(recent[1]) if len(recent) > 1 else None})
    events = await q.list_events(store, limit=MAX_EVENTS)
    for e in events:
        e["reasons"] = [str(x) for x in (_json(e.get("detail")).get("reasons") or [])]
    picks = await q.list_runs(store, limit=PICK_RUNS)
    return view.render("evals.html", title="Evals", suites=rows, events=events, picks=picks,
                       runs_per_suite=RUNS_PER_SUITE, filterbar=False)


@page(PAGES, "/evals/runs/{run_id}", "Eval run", "viewer", nav=False)
async def run_page(view: View) -> Response:
    store = view.state.store
    run = await _run(view, str(view.request.path_params["run_id"]), "run_id")
    after = _after(view)
    rows = await q.page_results(store, run["id"], status="failed", after=after or (-1, -1),
                                limit=FAILED_PAGE + 1)
    more = len(rows) > FAILED_PAGE
    failed = [{**r, "failures": _failures(r)} for r in rows[:FAILED_PAGE]]
    older = (f"/evals/runs/{run['id']}?after={failed[-1]['case_idx']}:{failed[-1]['repeat']}"
             if more else None)
    others = [r for r in await q.list_runs(store, suite=run["suite"], limit=PICK_RUNS)
              if r["id"] != run["id"]]
    summary = _json(run.get("summary"))
    return view.render(
        "evals_run.html", title=f"Eval run {run['id'][:12]}", run=run, summary=summary,
        config=_json(run.get("config")), pass_rate=pass_rate(run), failed=failed,
        older=older, first=f"/evals/runs/{run['id']}" if after else None, others=others,
        scorers=sorted((summary.get("scorers") or {}).items()), max_output=MAX_OUTPUT,
        filterbar=False)


def gate_of(run: dict[str, Any]) -> tuple[GateSpec, bool]:
    """The gate settings the candidate's suite recorded (alpha, min_effect), and whether
    they are the suite's own (False: the defaults, as ``keel eval compare`` uses)."""
    recorded = _json(run.get("config")).get("gate")
    if isinstance(recorded, dict):
        try:
            return GateSpec.model_validate(recorded), True
        except ValidationError:
            pass
    return GateSpec(), False


@page(PAGES, "/evals/compare", "Compare eval runs", "viewer", nav=False)
async def compare_page(view: View) -> Response:
    store = view.state.store
    qp = view.request.query_params
    raw_a, raw_b = (qp.get("a") or "").strip(), (qp.get("b") or "").strip()
    recent = await q.list_runs(store, limit=PICK_RUNS)
    if not raw_a and not raw_b:
        return view.render("evals_compare.html", title="Compare eval runs", cmp=None,
                           picks=recent, a=None, b=None, filterbar=False)
    if not raw_a or not raw_b:
        missing = "a" if not raw_a else "b"
        raise InvalidRequest("pick two runs: a (the baseline, before) and b (the candidate, "
                             "after)", param=missing)
    run_a, run_b = await _run(view, raw_a, "a"), await _run(view, raw_b, "b")
    if run_a["id"] == run_b["id"]:
        raise InvalidRequest("pick two different runs to compare", param="b")
    cmp = await compare_runs(store, run_a["id"], run_b["id"])
    gate, own = gate_of(run_b)
    thresholds = _json(run_b.get("summary")).get("thresholds") or {}
    verdict = gate_verdict(cmp, gate, thresholds)
    return view.render("evals_compare.html", title="Compare eval runs", cmp=cmp,
                       verdict=verdict, gate=gate, own_gate=own, rule=GATE_RULE,
                       picks=_picks(recent, run_a, run_b), a=run_a, b=run_b,
                       scorer_names=sorted(set(cmp.a.scorers) | set(cmp.b.scorers)),
                       max_output=MAX_OUTPUT, filterbar=False)
