"""Eval reports of stored runs and comparisons, written to the paths asked for (HTML, JSON,
JUnit XML in one pass over the cases), and a stored run's HTML page for the admin API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from keel.errors import NotFound
from keel.evals.compare import Comparison, Verdict, case_pairs
from keel.evals.report.html_report import render_comparison_html, render_run_html
from keel.evals.report.json_report import PathLike, comparison_json, write_run_json
from keel.evals.report.junit_report import comparison_junit, run_junit
from keel.evals.report.table import MAX_HTML_CASES, MAX_JUNIT_CASES, CaseTable, stored_cases
from keel.store import Store
from keel.store import evals as q


def _write(path: PathLike, data: str | bytes) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        p.write_text(data, encoding="utf-8")
    else:
        p.write_bytes(data)


async def run_html(store: Store, run_id: str) -> str:
    """The HTML report of one stored run (its cases read from the store)."""
    run = await q.get_run(store, run_id)
    if run is None:
        raise NotFound(f"no eval run '{run_id}'; GET /api/evals/runs lists them",
                       code="eval_run_not_found")
    table = CaseTable(MAX_HTML_CASES)
    async for case in stored_cases(store, run_id):
        table.add(case)
    return render_run_html(run, table)


async def write_run_report(store: Store, run_id: str, html: PathLike | None = None,
                           json: PathLike | None = None,
                           junit: PathLike | None = None) -> None:
    """Write the reports of one stored run to the paths given (any may be None)."""
    run = await q.get_run(store, run_id)
    if run is None:
        raise NotFound(f"no eval run '{run_id}'; `keel eval runs` lists them")
    if json is not None:
        await write_run_json(store, run, json)
    if html is None and junit is None:
        return
    table = CaseTable(max(MAX_HTML_CASES, MAX_JUNIT_CASES))
    async for case in stored_cases(store, run_id):
        table.add(case)
    if html is not None:
        await asyncio.to_thread(_write, html, render_run_html(run, table))
    if junit is not None:
        await asyncio.to_thread(_write, junit, run_junit(run, table))


async def write_comparison_report(store: Store, cmp: Comparison, verdict: Verdict,
                                  html: PathLike | None = None,
                                  json: PathLike | None = None,
                                  junit: PathLike | None = None) -> None:
    """Write the reports of a comparison and its verdict to the paths given (any may be
    None); the candidate's cases are read again from the store for the HTML case table
    and the JUnit test cases."""
    if json is not None:
        await asyncio.to_thread(_write, json, orjson.dumps(comparison_json(cmp, verdict)))
    if html is None and junit is None:
        return
    table = CaseTable(max(MAX_HTML_CASES, MAX_JUNIT_CASES))
    async for a, b in case_pairs(store, cmp):
        if b is not None:
            table.add(b, a)
    if html is not None:
        run_a = await q.get_run(store, cmp.a.run_id)
        run_b = await q.get_run(store, cmp.b.run_id)
        if run_a is None or run_b is None:
            raise NotFound("a compared eval run is no longer stored")
        await asyncio.to_thread(_write, html,
                                render_comparison_html(cmp, verdict, run_a, run_b, table))
    if junit is not None:
        await asyncio.to_thread(_write, junit, comparison_junit(cmp, verdict, table))
