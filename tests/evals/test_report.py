"""Eval reports: JSON, JUnit XML (parsed back, failures counted) and self-contained HTML
(escaped, with the scorers and pass rates), from runs stored as the runner stores them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
import pytest

from keel.evals.compare import case_pairs, compare_runs, gate_verdict
from keel.evals.report import (
    CaseTable,
    cases_from_rows,
    comparison_json,
    junit_xml,
    render_comparison_html,
    render_run_html,
    run_junit_xml,
    run_report_json,
    write_comparison_report,
    write_run_report,
)
from keel.evals.suite import GateSpec
from keel.store import Store
from keel.store import evals as q
from tests.evals.test_compare import (
    ERROR,
    FAIL,
    LONG,
    PASS,
    flips_scenario,
    make_run,
    make_suite,
    thresholds_of,
)

XSS = "<script>alert('owned')</script>"
GATE = GateSpec(alpha=0.05, min_effect=0.02)


async def rows_of(store: Store, run_id: str) -> list[dict[str, Any]]:
    return [r async for r in q.iter_results(store, run_id)]


def junit_counts(root: ET.Element) -> dict[str, int]:
    return {"tests": len(root.findall(".//testcase")),
            "failures": len(root.findall(".//testcase/failure")),
            "errors": len(root.findall(".//testcase/error"))}


async def gate_runs(store: Store) -> tuple[dict[str, Any], dict[str, Any]]:
    a_out, b_out = flips_scenario()  # 55 pass -> fail, 4 back, 3 fail both, 2 errored
    outputs = {0: XSS + " & more", 70: "\x1b[31mcoloured\x1b[0m <b>bold</b>"}
    run_a = await make_run(store, a_out, target="support-reply@2", role="baseline")
    run_b = await make_run(store, b_out, target="support-reply@3 <candidate>",
                           role="candidate", outputs=outputs)
    return run_a, run_b


# --- JSON ---------------------------------------------------------------------------------

async def test_run_json_report(store: Store, tmp_path: Path) -> None:
    run = await make_run(store, [[PASS, PASS], [PASS, FAIL], [ERROR, ERROR]])
    rows = await rows_of(store, run["id"])
    report = run_report_json(run, rows)
    assert report["kind"] == "keel.eval_run"
    assert report["run"]["config"]["repeats"] == 2 and "summary" not in report["run"]
    assert report["pass_rate"]["rate"] == pytest.approx(3 / 6)
    assert report["pass_rate"]["ci95"][0] < 0.5 < report["pass_rate"]["ci95"][1]
    assert report["scorers"]["mentions-answer"]["pass_rate"]["n"] == 4
    assert len(report["results"]) == 6 and report["results"][1]["scores"][0]["passed"] is True
    assert report["thresholds"]["judgeable"] is False  # 2 of 6 errored

    # the written file streams the same results and parses to the same report
    path = tmp_path / "out" / "run.json"
    await write_run_report(store, run["id"], json=path)
    assert orjson.loads(path.read_bytes()) == orjson.loads(orjson.dumps(report))


async def test_run_json_report_of_a_run_without_results(store: Store, tmp_path: Path) -> None:
    run = await make_run(store, [[PASS]])
    bare = {**run, "id": "0" * 32, "status": "failed", "summary": None, "executions": 0,
            "passed": 0}
    await q.create_run(store, {k: v for k, v in bare.items()})
    path = tmp_path / "bare.json"
    await write_run_report(store, bare["id"], json=path)
    data = orjson.loads(path.read_bytes())
    assert data["results"] == [] and data["run"]["status"] == "failed"
    assert data["pass_rate"] == {"rate": None, "ci95": [0.0, 1.0], "successes": 0, "n": 0}
    # the HTML and JUnit reports of a stopped run say so
    await write_run_report(store, bare["id"], html=tmp_path / "bare.html",
                           junit=tmp_path / "bare.xml")
    html = (tmp_path / "bare.html").read_text(encoding="utf-8")
    assert "run failed" in html and "No results recorded." in html
    root = ET.parse(tmp_path / "bare.xml").getroot()
    assert junit_counts(root) == {"tests": 1, "failures": 0, "errors": 1}


async def test_comparison_json(store: Store, tmp_path: Path) -> None:
    run_a, run_b = await gate_runs(store)
    cmp = await compare_runs(store, run_a["id"], run_b["id"])
    verdict = gate_verdict(cmp, GATE, thresholds_of(run_b))
    data = orjson.loads(orjson.dumps(comparison_json(cmp, verdict)))
    assert data["verdict"]["code"] == 1 and data["verdict"]["regression"] is True
    # the 2 cases errored on the candidate are not paired: 55 pass -> fail of 78 compared
    assert data["comparison"]["pass_to_fail"]["count"] == 55
    assert data["comparison"]["cases_compared"] == 78
    assert data["comparison"]["a_pass_rate"] == pytest.approx(71 / 78)
    assert data["comparison"]["b_pass_rate"] == pytest.approx(20 / 78)
    path = tmp_path / "gate.json"
    await write_comparison_report(store, cmp, verdict, json=path)
    assert orjson.loads(path.read_bytes()) == data


# --- JUnit XML ----------------------------------------------------------------------------

async def test_gate_junit_xml_parses_with_the_right_failures(store: Store,
                                                            tmp_path: Path) -> None:
    run_a, run_b = await gate_runs(store)
    cmp = await compare_runs(store, run_a["id"], run_b["id"])
    verdict = gate_verdict(cmp, GATE, thresholds_of(run_b))
    path = tmp_path / "junit.xml"
    await write_comparison_report(store, cmp, verdict, junit=path)
    root = ET.parse(path).getroot()  # parses, although an answer held an escape character
    assert root.tag == "testsuites"
    counts = junit_counts(root)
    # 80 cases + the gate; 55 regressed + 3 failing on both + the gate fail; 2 errored
    assert counts == {"tests": 81, "failures": 59, "errors": 2}
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("81", "59", "2")
    gate_suite, cases_suite = root.findall("testsuite")
    assert (gate_suite.get("tests"), gate_suite.get("failures")) == ("1", "1")
    (gate,) = gate_suite.findall("testcase")
    failure = gate.find("failure")
    assert failure is not None and failure.get("type") == "regression"
    # the paired rates over the 78 compared cases (the 2 errored ones left out)
    assert failure.get("message", "").startswith(
        "regression: pass rate 91.0% -> 25.6% (-65.4 points)")
    assert failure.text == "\n".join(verdict.reasons)
    assert cases_suite.get("failures") == "58" and cases_suite.get("errors") == "2"
    by_name = {tc.get("name"): tc for tc in cases_suite.findall("testcase")}
    regressed = by_name["case-0000"].find("failure")
    assert regressed is not None and regressed.get("type") == "regression"
    assert "passed 100% on the baseline" in regressed.get("message", "")
    assert XSS in (regressed.text or "")  # escaped in the file, the same text parsed back
    assert "<script>" not in path.read_text()
    both = by_name["case-0060"].find("failure")
    assert both is not None and both.get("type") == "failed"
    assert "concise: 131 words is above max_words 80" in both.get("message", "")
    err = by_name["case-0062"].find("error")
    assert err is not None and "503 Service Unavailable" in err.get("message", "")
    assert by_name["case-0070"].find("failure") is None
    props = {p.get("name"): p.get("value") for p in cases_suite.iter("property")}
    assert props["candidate_run"] == run_b["id"] and props["dataset"] == "support@1"
    assert (props["baseline_pass_rate"], props["candidate_pass_rate"]) == ("91.0%", "25.6%")


async def test_junit_lists_at_most_the_cap_failing_cases_first(store: Store) -> None:
    run_a = await make_run(store, [[PASS]] * 30)
    run_b = await make_run(store, [[PASS]] * 20 + [[FAIL]] * 8 + [[ERROR]] * 2)
    cmp = await compare_runs(store, run_a["id"], run_b["id"])
    verdict = gate_verdict(cmp, GATE, thresholds_of(run_b))
    pairs = [p async for p in case_pairs(store, cmp)]
    root = ET.fromstring(junit_xml(cmp, verdict, pairs, max_cases=12))
    cases_suite = root.findall("testsuite")[1]
    assert junit_counts(cases_suite) == {"tests": 12, "failures": 8, "errors": 2}
    note = cases_suite.find("system-out")
    assert note is not None and "18 of 30 cases are not listed" in (note.text or "")
    gate = root.findall("testsuite")[0].find("testcase")
    assert verdict.code == 1  # 2 of 30 errored is within max_error_rate (10%)
    # the regression is the 8 failed cases (of 28 compared), not the 2 errored ones
    assert verdict.regression and (cmp.cases_compared, cmp.worse) == (28, 8)
    assert gate is not None and gate.find("failure") is not None


async def test_run_junit_xml_has_a_thresholds_case(store: Store, tmp_path: Path) -> None:
    suite = make_suite(threshold={"pass_rate": 0.9})
    run = await make_run(store, [[PASS]] * 7 + [[FAIL]] * 2 + [[LONG]], suite=suite)
    rows = await rows_of(store, run["id"])
    root = ET.fromstring(run_junit_xml(run, cases_from_rows(rows)))
    assert junit_counts(root) == {"tests": 11, "failures": 4, "errors": 0}
    th = next(tc for tc in root.iter("testcase") if tc.get("name") == "thresholds")
    failure = th.find("failure")
    assert failure is not None and failure.get("message") == \
        "pass rate 70.0% < threshold 90.0%"
    await write_run_report(store, run["id"], junit=tmp_path / "run.xml")
    written = ET.parse(tmp_path / "run.xml").getroot()
    assert junit_counts(written) == junit_counts(root)


# --- HTML ---------------------------------------------------------------------------------

async def test_run_html_is_escaped_and_shows_scorers_and_rates(store: Store,
                                                              tmp_path: Path) -> None:
    outcomes = [[PASS]] * 17 + [[FAIL], [LONG], [ERROR]]
    run = await make_run(store, outcomes, outputs={17: XSS, 0: "fine & <dandy>"},
                         target="support-reply@3 <b>beta</b>")
    html = render_run_html(run, await rows_of(store, run["id"]))
    assert "<script" not in html.lower()  # no script at all: the answer is escaped
    assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in html
    assert "<b>beta</b>" not in html and "&lt;b&gt;beta&lt;/b&gt;" in html
    assert "fine &amp; &lt;dandy&gt;" in html
    assert "mentions-answer" in html and "concise" in html
    assert "85.0%" in html  # 17 of 20 executions passed
    assert "94.7%" in html  # mentions-answer: 18 of 19 judged
    assert "support@1" in html and "a1b2c3d4e5f6" in html
    assert 'href="http' not in html and "<link" not in html  # self-contained
    assert "upstream: 503 Service Unavailable" in html
    # failed and errored cases are listed before passing ones
    assert html.index("case-0017") < html.index("case-0000")
    assert html.index("case-0019") < html.index("case-0000")

    path = tmp_path / "run.html"
    await write_run_report(store, run["id"], html=path)
    written = path.read_text(encoding="utf-8")
    assert "&lt;script&gt;" in written and "85.0%" in written


async def test_run_html_caps_the_case_table(store: Store) -> None:
    run = await make_run(store, [[PASS]] * 30 + [[FAIL]] * 5)
    rows = await rows_of(store, run["id"])
    table = CaseTable(10)
    for case in cases_from_rows(rows):
        table.add(case)
    assert [c.case_id for c in table.rows()][:5] == [f"case-{i:04d}" for i in range(30, 35)]
    assert table.hidden() == 25 and table.total == 35
    assert sum(len(v) for v in table.kept.values()) <= 10  # bounded whatever is added
    html = render_run_html(run, table)
    assert "25 of 35 cases not shown" in html


async def test_comparison_html(store: Store, tmp_path: Path) -> None:
    run_a, run_b = await gate_runs(store)
    cmp = await compare_runs(store, run_a["id"], run_b["id"])
    verdict = gate_verdict(cmp, GATE, thresholds_of(run_b))
    html = render_comparison_html(cmp, verdict, run_a, run_b)
    assert "<script" not in html.lower()
    assert "support-reply@3 &lt;candidate&gt;" in html
    assert "Regression" in html and "exit code 1" in html
    assert "91.2%" in html and "25.0%" in html  # pass rates over all executions
    assert "-66.2 pts" in html  # their change
    assert "91.0%" in html and "25.6%" in html  # over the 78 compared cases
    assert "-65.4 <small>pts</small>" in html  # the paired change in points
    assert "78 cases compared: 55 worse, 4 better, 19 same" in html
    assert "2 case(s) with an errored execution on either side are left out" in html
    assert "mentions-answer" in html and "concise" in html
    assert "Pass → fail" in html and "Fail → pass" in html
    assert "first 50 listed" in html
    assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in html
    assert "Gate rule:" in html

    path = tmp_path / "gate.html"
    await write_comparison_report(store, cmp, verdict, html=path, junit=tmp_path / "j.xml",
                                  json=tmp_path / "g.json")
    written = path.read_text(encoding="utf-8")
    assert "Candidate cases" in written and "case-0079" in written
    assert "<script" not in written.lower()
    assert (tmp_path / "j.xml").exists() and (tmp_path / "g.json").exists()


async def test_comparison_html_of_an_unjudgeable_gate(store: Store) -> None:
    run_a = await make_run(store, [[PASS]] * 10)
    run_b = await make_run(store, [[ERROR]] * 10)
    cmp = await compare_runs(store, run_a["id"], run_b["id"])
    assert cmp.cases_compared == 0 and cmp.effect is None  # every case errored on B
    verdict = gate_verdict(cmp, GATE, thresholds_of(run_b))
    assert verdict.code == 2
    assert verdict.reasons[0].startswith("the candidate run cannot be judged")
    html = render_comparison_html(cmp, verdict, run_a, run_b)
    assert "Cannot judge" in html and "cannot be judged" in html
    root = ET.fromstring(junit_xml(cmp, verdict, []))
    gate = root.find("testsuite/testcase")
    assert gate is not None and gate.find("error") is not None
