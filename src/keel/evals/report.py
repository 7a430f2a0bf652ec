"""Eval reports: JSON for machines, JUnit XML for CI systems, HTML for people.

Every report is built from a run row (or a :class:`~keel.evals.compare.Comparison`) and
from results read a page at a time; lists are capped (:data:`MAX_HTML_CASES` cases in an
HTML table, :data:`MAX_JUNIT_CASES` test cases per JUnit suite, non-passing cases first),
so report size and memory stay bounded whatever the dataset size. The JSON report of a run
lists every result and is written to its file as it is read.

HTML reports are single self-contained files (inline CSS, no scripts, no external assets),
rendered by jinja2 with autoescaping from the templates in ``keel/evals/templates``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import IO, Any

import jinja2
import orjson

from keel.errors import NotFound
from keel.evals.cases import CaseResult, Pair, cases_from_rows, clip
from keel.evals.compare import GATE_RULE, Comparison, Rate, Verdict, case_pairs
from keel.store import Store
from keel.store import evals as q

MAX_HTML_CASES = 2000
MAX_JUNIT_CASES = 5000
MAX_HTML_OUTPUT = 1000
JSON_CHUNK = 500  # result rows written to a JSON report at a time

PathLike = str | Path

_STATUS_ORDER = {"failed": 0, "errored": 1, "flaky": 2, "passed": 3}
_RESULT_KEYS = ("case_idx", "repeat", "case_id", "status", "output", "error", "latency_ms",
                "cost_usd", "input_tokens", "output_tokens", "cached", "trace_id")
# characters XML 1.0 cannot carry, even escaped (model output may hold any of them)
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# --- shared helpers -------------------------------------------------------------------------

def _loads(raw: str | None) -> Any:
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _rate_dict(rate: Rate) -> dict[str, Any]:
    return {"rate": rate.rate, "ci95": [rate.lo, rate.hi], "successes": rate.successes,
            "n": rate.n}


async def _stored_cases(store: Store, run_id: str) -> AsyncIterator[CaseResult]:
    cur: CaseResult | None = None
    async for row in q.iter_results(store, run_id):
        if cur is None or row["case_idx"] != cur.idx:
            if cur is not None:
                yield cur
            cur = CaseResult(int(row["case_idx"]), str(row["case_id"]))
        cur.add(row)
    if cur is not None:
        yield cur


class CaseTable:
    """The cases a report lists: at most ``cap``, failed first, then errored, flaky and
    passed (each kind in dataset order), with counts of every case seen. Holds at most
    ``cap`` cases whatever the number added."""

    def __init__(self, cap: int = MAX_HTML_CASES) -> None:
        self.cap = cap
        self.kept: dict[str, list[tuple[CaseResult | None, CaseResult]]] = {
            k: [] for k in _STATUS_ORDER}
        self.counts: dict[str, int] = dict.fromkeys(_STATUS_ORDER, 0)
        self.total = 0

    def add(self, case: CaseResult, baseline: CaseResult | None = None) -> None:
        self.total += 1
        status = case.status
        self.counts[status] += 1
        room = self.cap
        for kind in _STATUS_ORDER:  # what kinds listed before this one leave
            if kind == status:
                break
            room -= len(self.kept[kind])
        if room <= len(self.kept[status]):
            return
        self.kept[status].append((baseline, case))
        left = self.cap
        for kind in _STATUS_ORDER:  # drop what no longer fits after it
            del self.kept[kind][max(0, left):]
            left -= len(self.kept[kind])

    def pairs(self, limit: int | None = None) -> list[tuple[CaseResult | None, CaseResult]]:
        limit = self.cap if limit is None else min(limit, self.cap)
        out: list[tuple[CaseResult | None, CaseResult]] = []
        for status in _STATUS_ORDER:
            out += self.kept[status][:limit - len(out)]
        return out

    def rows(self, limit: int | None = None) -> list[CaseResult]:
        return [case for _, case in self.pairs(limit)]

    def hidden(self, limit: int | None = None) -> int:
        """Cases not listed when ``limit`` (default: the cap) are."""
        limit = self.cap if limit is None else min(limit, self.cap)
        return self.total - min(self.total, limit)


# --- JSON -----------------------------------------------------------------------------------

def result_json(row: dict[str, Any]) -> dict[str, Any]:
    """One result row for a JSON report (scores parsed)."""
    out = {k: row.get(k) for k in _RESULT_KEYS}
    out["cached"] = bool(out["cached"])
    scores = _loads(row.get("scores"))
    out["scores"] = scores if isinstance(scores, list) else []
    return out


def run_report_json(run: dict[str, Any],
                    results: Iterable[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A run as JSON: its row (config and summary parsed), the overall and per-scorer pass
    rates with 95% Wilson intervals, and, when ``results`` are given, every result row."""
    summary = _loads(run.get("summary"))
    record = {k: v for k, v in run.items() if k not in ("config", "summary")}
    record["config"] = _loads(run.get("config"))
    executions = int(run.get("executions") or 0)
    scorers = {}
    for name, s in (summary.get("scorers") or {}).items():
        judged = int(s.get("passed", 0)) + int(s.get("failed", 0))
        scorers[name] = {**s, "pass_rate": _rate_dict(Rate.of(int(s.get("passed", 0)), judged))}
    out: dict[str, Any] = {
        "kind": "keel.eval_run",
        "run": record,
        "summary": summary,
        "pass_rate": _rate_dict(Rate.of(int(run.get("passed") or 0), executions)),
        "scorers": scorers,
        "thresholds": summary.get("thresholds") or {},
    }
    if results is not None:
        out["results"] = [result_json(r) for r in results]
    return out


def comparison_json(cmp: Comparison, verdict: Verdict | None = None) -> dict[str, Any]:
    """A comparison (and the gate's verdict on it) as JSON."""
    out: dict[str, Any] = {"kind": "keel.eval_comparison"}
    if verdict is not None:
        out["verdict"] = verdict.to_dict()
    out["comparison"] = cmp.to_dict()
    return out


# --- JUnit XML ------------------------------------------------------------------------------

def _x(text: Any) -> str:
    """Text XML 1.0 can carry (ElementTree escapes markup; invalid characters go)."""
    return _XML_INVALID.sub("\ufffd", str(text))


def _fmt_rate(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


class _Suite:
    """One <testsuite>: test cases added one by one, counters kept."""

    def __init__(self, name: str, properties: dict[str, Any] | None = None) -> None:
        self.el = ET.Element("testsuite", name=_x(name))
        self.tests = self.failures = self.errors = self.skipped = 0
        self.time = 0.0
        if properties:
            props = ET.SubElement(self.el, "properties")
            for k, v in properties.items():
                if v is not None:
                    value = str(v).lower() if isinstance(v, bool) else _x(v)
                    ET.SubElement(props, "property", name=_x(k), value=value)

    def case(self, classname: str, name: str, seconds: float = 0.0, *,
             failure: tuple[str, str, str] | None = None,
             error: tuple[str, str, str] | None = None, out: str | None = None) -> None:
        tc = ET.SubElement(self.el, "testcase", classname=_x(classname), name=_x(name),
                           time=f"{seconds:.3f}")
        self.tests += 1
        self.time += seconds
        for tag, item in (("failure", failure), ("error", error)):
            if item is not None:
                kind, message, text = item
                el = ET.SubElement(tc, tag, type=_x(kind), message=_x(clip(message, 500)))
                el.text = _x(text)
                if tag == "failure":
                    self.failures += 1
                else:
                    self.errors += 1
        if out:
            ET.SubElement(tc, "system-out").text = _x(out)

    def note(self, text: str) -> None:
        ET.SubElement(self.el, "system-out").text = _x(text)

    def close(self) -> ET.Element:
        self.el.set("tests", str(self.tests))
        self.el.set("failures", str(self.failures))
        self.el.set("errors", str(self.errors))
        self.el.set("skipped", str(self.skipped))
        self.el.set("time", f"{self.time:.3f}")
        return self.el


def _testsuites(name: str, suites: list[_Suite]) -> bytes:
    root = ET.Element("testsuites", name=_x(name))
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(getattr(s, key) for s in suites)))
    root.set("time", f"{sum(s.time for s in suites):.3f}")
    for s in suites:
        root.append(s.close())
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _case_test(suite: _Suite, classname: str, case: CaseResult,
               baseline: CaseResult | None, compared: bool) -> None:
    seconds = case.latency_ms / case.executions / 1000.0 if case.executions else 0.0
    detail = "\n".join(case.failures) or "no explanation recorded"
    if case.output is not None and case.status != "passed":
        detail += f"\n\nanswer:\n{case.output}"
    of = f"passed {case.passed} of {case.executions} execution(s)"
    regressed = baseline is not None and baseline.passing and not case.passing
    if case.status == "passed":
        suite.case(classname, case.case_id, seconds)
    elif case.status == "errored":
        msg = case.failures[0] if case.failures else "errored"
        if regressed:
            assert baseline is not None
            msg += f" (passed {baseline.rate:.0%} on the baseline)"
        suite.case(classname, case.case_id, seconds, error=("errored", msg, detail))
    elif regressed:
        assert baseline is not None
        msg = (f"regressed: passed {baseline.rate:.0%} on the baseline, {case.rate:.0%} "
               f"now; {case.failures[0] if case.failures else of}")
        suite.case(classname, case.case_id, seconds, failure=("regression", msg, detail))
    else:
        msg = f"{of}: {case.failures[0]}" if case.failures else of
        if compared and baseline is None:
            msg = "new case; " + msg
        suite.case(classname, case.case_id, seconds, failure=(case.status, msg, detail))


def _cases_suite(name: str, classname: str, table: CaseTable, properties: dict[str, Any],
                 compared: bool, more_hint: str) -> _Suite:
    suite = _Suite(name, properties)
    limit = min(table.cap, MAX_JUNIT_CASES)
    pairs = sorted(table.pairs(limit), key=lambda p: p[1].idx)
    for baseline, case in pairs:
        _case_test(suite, classname, case, baseline, compared)
    hidden = table.hidden(limit)
    if hidden:
        suite.note(f"{hidden} of {table.total} cases are not listed (at most {limit}, "
                   f"failing cases first); {more_hint}")
    return suite


def _gate_suite(cmp: Comparison, verdict: Verdict) -> _Suite:
    suite = _Suite("keel eval gate", {"verdict": verdict.result, "code": verdict.code,
                                      "regression": verdict.regression})
    text = "\n".join(verdict.reasons)
    name = f"{cmp.b.suite}: {cmp.b.target} vs {cmp.a.target}"
    msg = verdict.reasons[0] if verdict.reasons else verdict.result
    if verdict.code == 1:
        suite.case("keel.gate", name, failure=("regression" if verdict.regression
                                               else "threshold", msg, text))
    elif verdict.code != 0:
        suite.case("keel.gate", name, error=("unjudgeable", msg, text))
    else:
        suite.case("keel.gate", name, out=text)
    return suite


def _comparison_properties(cmp: Comparison) -> dict[str, Any]:
    return {"baseline_run": cmp.a.run_id, "candidate_run": cmp.b.run_id,
            "baseline_target": cmp.a.target, "candidate_target": cmp.b.target,
            "dataset": cmp.b.dataset, "git_commit": cmp.b.git_commit,
            "baseline_pass_rate": _fmt_rate(cmp.a_pass_rate),
            "candidate_pass_rate": _fmt_rate(cmp.b_pass_rate),
            "sign_test_p": f"{cmp.p_worse:.4g}"}


def junit_xml(cmp: Comparison, verdict: Verdict, pairs: Iterable[Pair] = (), *,
              max_cases: int = MAX_JUNIT_CASES) -> bytes:
    """A gate as JUnit XML: a test suite with the test case ``gate`` (a failure carrying
    the verdict's reasons when it exits 1, an error when it exits 2), and a test suite of
    the candidate's cases (``pairs`` as from :func:`keel.evals.compare.case_pairs`): a
    failure for a failed or regressed case, an error for an errored one; at most
    ``max_cases``, failing ones first."""
    table = CaseTable(max_cases)
    for a, b in pairs:
        if b is not None:
            table.add(b, a)
    return _comparison_junit(cmp, verdict, table)


def _comparison_junit(cmp: Comparison, verdict: Verdict, table: CaseTable) -> bytes:
    suites = [_gate_suite(cmp, verdict)]
    if table.total:
        suites.append(_cases_suite(
            f"{cmp.b.suite}: {cmp.b.target}", f"keel.eval.{cmp.b.suite}", table,
            _comparison_properties(cmp), True,
            f"keel eval show {cmp.b.run_id} --failures lists them"))
    return _testsuites(f"keel eval gate {cmp.b.suite}", suites)


def run_junit_xml(run: dict[str, Any], cases: Iterable[CaseResult], *,
                  max_cases: int = MAX_JUNIT_CASES) -> bytes:
    """One run as JUnit XML: a test case per case (at most ``max_cases``, failing ones
    first) and a test case ``thresholds`` failing with the suite's broken thresholds."""
    table = CaseTable(max_cases)
    for case in cases:
        table.add(case)
    return _run_junit(run, table)


def _run_junit(run: dict[str, Any], table: CaseTable) -> bytes:
    summary = _loads(run.get("summary"))
    th = summary.get("thresholds") or {}
    props = {"run": run["id"], "target": run["target"],
             "dataset": f"{run['dataset_name']}@{run['dataset_version']}",
             "git_commit": run.get("git_commit"), "status": run["status"],
             "pass_rate": _fmt_rate(summary.get("pass_rate"))}
    suite = _cases_suite(f"{run['suite']}: {run['target']}", f"keel.eval.{run['suite']}",
                         table, props, False, f"keel eval show {run['id']} --failures lists them")
    failures = [str(f) for f in th.get("failures") or ()]
    if run["status"] != "done":
        suite.case("keel.thresholds", "thresholds", error=(
            "unjudgeable", f"run is {run['status']}", str(run.get("error") or "")))
    elif not th.get("judgeable", False):
        suite.case("keel.thresholds", "thresholds",
                   error=("unjudgeable", failures[0] if failures else "cannot be judged",
                          "\n".join(failures)))
    elif failures:
        suite.case("keel.thresholds", "thresholds",
                   failure=("threshold", failures[0], "\n".join(failures)))
    else:
        suite.case("keel.thresholds", "thresholds")
    return _testsuites(f"keel eval {run['suite']}", [suite])


# --- HTML -----------------------------------------------------------------------------------

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
        env.filters.update(pct=_pct, usd=_usd, ms=_ms, num=_num, when=_when,
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
    summary = _loads(run.get("summary"))
    config = _loads(run.get("config"))
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
        generated=_when(dt.datetime.now(dt.UTC).timestamp()))


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
        generated=_when(dt.datetime.now(dt.UTC).timestamp()))


def _flip_view(flip: Any) -> dict[str, Any]:
    return {"id": flip.case_id, "idx": flip.case_idx, "a_rate": flip.a_rate,
            "b_rate": flip.b_rate, "a_failures": flip.a_failures,
            "b_failures": flip.b_failures,
            "output": None if flip.b_output is None else clip(flip.b_output, MAX_HTML_OUTPUT)}


# --- writing report files -------------------------------------------------------------------

def _write(path: PathLike, data: str | bytes) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        p.write_text(data, encoding="utf-8")
    else:
        p.write_bytes(data)


def _open(path: PathLike) -> IO[bytes]:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p.open("wb")


async def _write_run_json(store: Store, run: dict[str, Any], path: PathLike) -> None:
    """The run's JSON report, results streamed into the file a chunk at a time."""
    head = orjson.dumps(run_report_json(run))
    fh = await asyncio.to_thread(_open, path)
    try:
        await asyncio.to_thread(fh.write, head[:-1] + b',"results":[')
        chunk: list[bytes] = []
        first = True
        async for row in q.iter_results(store, run["id"]):
            chunk.append(orjson.dumps(result_json(row)))
            if len(chunk) >= JSON_CHUNK:
                await asyncio.to_thread(fh.write, (b"" if first else b",") + b",".join(chunk))
                first = False
                chunk = []
        if chunk:
            await asyncio.to_thread(fh.write, (b"" if first else b",") + b",".join(chunk))
        await asyncio.to_thread(fh.write, b"]}")
    finally:
        await asyncio.to_thread(fh.close)


async def run_html(store: Store, run_id: str) -> str:
    """The HTML report of one stored run (its cases read from the store)."""
    run = await q.get_run(store, run_id)
    if run is None:
        raise NotFound(f"no eval run '{run_id}'; GET /api/evals/runs lists them",
                       code="eval_run_not_found")
    table = CaseTable(MAX_HTML_CASES)
    async for case in _stored_cases(store, run_id):
        table.add(case)
    return _render_run(run, table)


async def write_run_report(store: Store, run_id: str, html: PathLike | None = None,
                           json: PathLike | None = None,
                           junit: PathLike | None = None) -> None:
    """Write the reports of one stored run to the paths given (any may be None)."""
    run = await q.get_run(store, run_id)
    if run is None:
        raise NotFound(f"no eval run '{run_id}'; `keel eval runs` lists them")
    if json is not None:
        await _write_run_json(store, run, json)
    if html is None and junit is None:
        return
    table = CaseTable(max(MAX_HTML_CASES, MAX_JUNIT_CASES))
    async for case in _stored_cases(store, run_id):
        table.add(case)
    if html is not None:
        await asyncio.to_thread(_write, html, _render_run(run, table))
    if junit is not None:
        await asyncio.to_thread(_write, junit, _run_junit(run, table))


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
        await asyncio.to_thread(_write, junit, _comparison_junit(cmp, verdict, table))
