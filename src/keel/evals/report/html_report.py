"""Eval reports as HTML, for people: a run, or a comparison with the gate's verdict, as one
self-contained page (inline CSS, no scripts, no external assets), rendered by jinja2 with
autoescaping from the templates in ``keel/evals/templates``. At most
:data:`MAX_HTML_CASES` cases are listed, non-passing ones first."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import jinja2

from keel.evals.cases import CaseResult, cases_from_rows, clip
from keel.evals.compare import GATE_RULE, Comparison, Rate, Verdict
from keel.evals.report.table import MAX_HTML_CASES, CaseTable, loads, when

MAX_HTML_OUTPUT = 1000

_ENV: jinja2.Environment | None = None
NA = "\u2013"  # shown for a missing value


def _pct(v: float | None, digits: int = 1) -> str:
    return NA if v is None else f"{v * 100:.{digits}f}%"


def _usd(v: float | None) -> str:
    if v is None:
        return NA
    return f"${v:,.2f}" if abs(v) >= 100 else f"${v:,.4f}"


def _ms(v: float | None) -> str:
    return NA if v is None else f"{v:,.0f} ms"


def _num(v: float | None) -> str:
    if v is None:
        return NA
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.3f}"


def environment() -> jinja2.Environment:
    """The jinja2 environment of the report templates (autoescaping on)."""
    global _ENV
    if _ENV is None:
        env = jinja2.Environment(loader=jinja2.PackageLoader("keel.evals", "templates"),
                                 autoescape=True, undefined=jinja2.StrictUndefined,
                                 trim_blocks=True, lstrip_blocks=True)
        env.filters.update(pct=_pct, usd=_usd, ms=_ms, num=_num, when=when,
                           short=lambda s: (s or "")[:12])
        _ENV = env
    return _ENV


def _rate_view(rate: Rate) -> dict[str, Any]:
    return {"rate": rate.rate, "lo": rate.lo, "hi": rate.hi, "n": rate.n,
            "successes": rate.successes}


def _case_view(case: CaseResult, baseline: CaseResult | None = None) -> dict[str, Any]:
    return {"idx": case.idx, "id": case.case_id, "status": case.status, "rate": case.rate,
            "passed": case.passed, "executions": case.executions,
            "latency_ms": case.latency_ms / case.executions if case.executions else None,
            "failures": case.failures,
            "output": None if case.output is None else clip(case.output, MAX_HTML_OUTPUT),
            "baseline_rate": None if baseline is None else baseline.rate}


def _duration(run: dict[str, Any]) -> str:
    if run.get("finished_at") is None:
        return NA
    secs = float(run["finished_at"]) - float(run["started_at"])
    return f"{secs:.1f} s" if secs < 120 else f"{secs / 60:.1f} min"


def _render_run(run: dict[str, Any], table: CaseTable) -> str:
    summary = loads(run.get("summary"))
    config = loads(run.get("config"))
    executions = int(run.get("executions") or 0)
    scorers = []
    for name, s in (summary.get("scorers") or {}).items():
        p, f = int(s.get("passed", 0)), int(s.get("failed", 0))
        scorers.append({"name": name, "passed": p, "failed": f,
                        "errored": int(s.get("errored", 0)), "mean": s.get("mean"),
                        "rate": _rate_view(Rate.of(p, p + f))})
    th = summary.get("thresholds") or {}
    if run["status"] != "done":
        state = ("error", f"run {run['status']}")
    elif not th.get("judgeable", False):
        state = ("error", "cannot be judged")
    elif th.get("failures"):
        state = ("fail", "threshold broken")
    else:
        th_cfg = config.get("threshold") or {}
        absolute = any(th_cfg.get(k) for k in ("pass_rate", "scorers", "max_cost_usd",
                                                "p95_latency_ms"))
        state = ("pass", "thresholds met" if absolute else "completed")
    return environment().get_template("run.html").render(
        run=run, summary=summary, config=config, state=state,
        pass_rate=_rate_view(Rate.of(int(run.get("passed") or 0), executions)),
        scorers=scorers, thresholds=th, flaky=(summary.get("flaky") or [])[:20],
        cases=[_case_view(c) for c in table.rows(MAX_HTML_CASES)], table=table,
        hidden=table.hidden(MAX_HTML_CASES),
        duration=_duration(run), repeats=config.get("repeats"),
        generated=when(dt.datetime.now(dt.UTC).timestamp()))


def render_run_html(run: dict[str, Any],
                    results: Iterable[dict[str, Any]] | CaseTable) -> str:
    """A run as a self-contained HTML page. ``results`` are its result rows in
    (case_idx, repeat) order, as :func:`keel.store.evals.iter_results` gives them, or a
    :class:`CaseTable` already filled with its cases."""
    if isinstance(results, CaseTable):
        return _render_run(run, results)
    table = CaseTable()
    for case in cases_from_rows(results):
        table.add(case)
    return _render_run(run, table)


def _metric(label: str, a: float | None, b: float | None, fmt: str,
            better: str | None) -> dict[str, Any]:
    """A row of the comparison's metrics table; ``better`` is up, down or None."""
    f = {"pct": _pct, "usd": _usd, "ms": _ms, "num": _num}[fmt]
    delta = None if a is None or b is None else b - a
    cls = ""
    if delta is None:
        shown = NA
    elif fmt == "pct":
        points = round(delta * 100, 1) + 0.0
        shown = "no change" if points == 0 else f"{points:+.1f} pts"
        if better and points:
            cls = "good" if (points > 0) == (better == "up") else "bad"
    elif delta == 0:
        shown = "no change"
    else:
        shown = ("+" if delta > 0 else "-") + f(abs(delta))
        if a and abs(delta / a) >= 0.005:
            shown += f" ({delta / a:+.0%})"
        if better:
            cls = "good" if (delta > 0) == (better == "up") else "bad"
    return {"label": label, "a": f(a), "b": f(b), "delta": shown, "cls": cls}


def render_comparison_html(cmp: Comparison, verdict: Verdict, run_a: dict[str, Any],
                           run_b: dict[str, Any],
                           cases: CaseTable | None = None) -> str:
    """A comparison and its verdict as a self-contained HTML page; ``cases`` (optional)
    adds a table of the candidate's cases."""
    a, b = cmp.a, cmp.b
    metrics = [
        _metric("Pass rate (compared cases)", cmp.a_pass_rate, cmp.b_pass_rate, "pct", "up"),
        _metric("Pass rate (all executions)", a.pass_rate.rate, b.pass_rate.rate, "pct", "up"),
        _metric("Cases", a.cases, b.cases, "num", None),
        _metric("Executions", a.executions, b.executions, "num", None),
        _metric("Errored executions", a.errored, b.errored, "num", "down"),
        _metric("Flaky cases", a.flaky_cases, b.flaky_cases, "num", "down"),
        _metric("Cost (uncached)", a.full_cost_usd, b.full_cost_usd, "usd", "down"),
        _metric("Input tokens", a.input_tokens, b.input_tokens, "num", "down"),
        _metric("Output tokens", a.output_tokens, b.output_tokens, "num", "down"),
        _metric("Latency p50", a.latency_p50_ms, b.latency_p50_ms, "ms", "down"),
        _metric("Latency p95", a.latency_p95_ms, b.latency_p95_ms, "ms", "down"),
    ]
    names = list(dict.fromkeys([*a.scorers, *b.scorers]))
    scorers = []
    for name in names:
        sa, sb = a.scorers.get(name), b.scorers.get(name)
        ra = sa.pass_rate if sa is not None else Rate.of(0, 0)
        rb = sb.pass_rate if sb is not None else Rate.of(0, 0)
        row = _metric(name, ra.rate, rb.rate, "pct", "up")
        row.update(a_rate=_rate_view(ra), b_rate=_rate_view(rb),
                   a_errored=sa.errored if sa else 0, b_errored=sb.errored if sb else 0)
        scorers.append(row)
    state = {0: "pass", 1: "fail"}.get(verdict.code, "error")
    title = {0: "Passed", 1: "Regression" if verdict.regression else "Threshold broken"}.get(
        verdict.code, "Cannot judge")
    return environment().get_template("comparison.html").render(
        cmp=cmp, verdict=verdict, run_a=run_a, run_b=run_b, a=a, b=b, state=state,
        title=title, metrics=metrics, scorers=scorers,
        a_rate=_rate_view(a.pass_rate), b_rate=_rate_view(b.pass_rate),
        b_thresholds=b.thresholds,
        p2f=[_flip_view(f) for f in cmp.pass_to_fail.examples],
        f2p=[_flip_view(f) for f in cmp.fail_to_pass.examples],
        cases=[_case_view(c, base) for base, c in cases.pairs(MAX_HTML_CASES)] if cases else [],
        table=cases, hidden=cases.hidden(MAX_HTML_CASES) if cases else 0, rule=GATE_RULE,
        generated=when(dt.datetime.now(dt.UTC).timestamp()))


def _flip_view(flip: Any) -> dict[str, Any]:
    return {"id": flip.case_id, "idx": flip.case_idx, "a_rate": flip.a_rate,
            "b_rate": flip.b_rate, "a_failures": flip.a_failures,
            "b_failures": flip.b_failures,
            "output": None if flip.b_output is None else clip(flip.b_output, MAX_HTML_OUTPUT)}
