"""Eval reports as JUnit XML, for CI systems: a run's cases as test cases (a failure for a
failed case, an error for an errored one) plus its thresholds, and a gate's verdict plus
the candidate's cases. At most :data:`MAX_JUNIT_CASES` test cases per suite, failing ones
first; text XML 1.0 cannot carry is replaced."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

from keel.evals.cases import CaseResult, Pair, clip
from keel.evals.compare import Comparison, Verdict
from keel.evals.report.table import MAX_JUNIT_CASES, CaseTable, loads

# characters XML 1.0 cannot carry, even escaped (model output may hold any of them)
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


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
    return comparison_junit(cmp, verdict, table)


def comparison_junit(cmp: Comparison, verdict: Verdict, table: CaseTable) -> bytes:
    """:func:`junit_xml` from a :class:`CaseTable` already filled with the candidate's
    cases."""
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
    return run_junit(run, table)


def run_junit(run: dict[str, Any], table: CaseTable) -> bytes:
    """:func:`run_junit_xml` from a :class:`CaseTable` already filled with the run's cases."""
    summary = loads(run.get("summary"))
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
