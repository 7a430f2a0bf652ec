"""The console's evals pages in a browser: the suites with their latest run, pass rate and
trend; a run's page (what ran, the pass rate per scorer, the failed cases); comparing two
runs (the cases that flipped and the gate's verdict, from keel.evals.compare); and clear
4xx pages for bad input. The runs are made by the eval runner, in process, through the
gateway with the mock provider, against two versions of a registered prompt."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.sync_api import Page, expect

from keel.evals.runner import Runner
from keel.evals.suite import parse_suite
from keel.gateway.internal import LocalGateway
from tests.console.conftest import axe_violations
from tests.console.support import ConsoleKeel, console_keel, login
from tests.console.support import session as _session
from tests.console.test_prompts_page import databases

# v1 puts "refunds" in every question, so the mock's answer (which names the question's
# first words) always mentions refunds; v2 does only when the case's question does.
PROMPT_V1 = {"name": "faq", "model": "mock-fast", "author": "ana",
             "messages": [{"role": "user", "content": "Question about refunds: {{question}}"}]}
PROMPT_V2 = {**PROMPT_V1, "author": "ben",
             "messages": [{"role": "user", "content": "Question: {{question}}"}]}
REFUND_CASES = [f"r{i}" for i in range(4)]  # pass in both runs
PARCEL_CASES = [f"p{i}" for i in range(6)]  # pass with v1, fail with v2


def run_suite(ck: ConsoleKeel, tmp_path: Path, target: str) -> dict[str, Any]:
    """Run the faq suite against ``target`` with the eval runner; the finished run row."""
    cases = [{"id": c, "vars": {"question": f"Refunds for order {c}: how long?"}}
             for c in REFUND_CASES]
    cases += [{"id": c, "vars": {"question": f"Where is parcel {c} now?"}}
              for c in PARCEL_CASES]
    (tmp_path / "faq-cases.jsonl").write_bytes(b"\n".join(orjson.dumps(c) for c in cases))
    suite = parse_suite({"name": "faq-suite", "dataset": "faq-cases.jsonl",
                         "targets": [target],
                         "scorers": [{"type": "contains", "value": "refunds"}]},
                        tmp_path / "suite.yaml")
    st = ck.keel.state
    runs = ck.keel.run(Runner(st.store, st.prompts, LocalGateway(st.flow)).run(suite))
    assert runs[0]["status"] == "done", runs[0]
    return dict(runs[0])


def make_runs(ck: ConsoleKeel, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    for body in (PROMPT_V1, PROMPT_V2):
        r = ck.admin("POST", "/api/prompts", json=body)
        assert r.status_code == 201, r.text
    before = run_suite(ck, tmp_path, "faq@1")
    after = run_suite(ck, tmp_path, "faq@2")
    assert (before["passed"], after["passed"]) == (10, 4)
    ck.keel.flush()  # the runs' traces, for the links to them
    return before, after


@pytest.fixture(scope="module")
def evals(tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[tuple[ConsoleKeel, dict[str, Any], dict[str, Any]]]:
    path = tmp_path_factory.mktemp("evals")
    with console_keel(path, requests=2) as ck:
        before, after = make_runs(ck, path)
        yield ck, before, after


def test_suites_show_latest_run_pass_rate_and_trend(
        page: Page, evals: tuple[ConsoleKeel, dict[str, Any], dict[str, Any]]) -> None:
    ck, before, after = evals
    login(page, ck.url, ck.keys["viewer"])
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Evals").click()
    expect(page.get_by_role("heading", level=1, name="Evals")).to_be_visible()
    row = page.locator("main table tbody tr", has_text="faq-suite")
    expect(row).to_have_count(1)
    expect(row.get_by_role("link", name=after["id"][:12])).to_be_visible()
    expect(row).to_contain_text("faq@2")
    expect(row.locator("td").nth(3)).to_contain_text("40.0%")
    expect(row.locator("td").nth(3)).to_contain_text("was 100.0%")
    expect(row.get_by_role("img")).to_have_attribute(
        "aria-label", "pass rate of faq-suite over its last 2 runs, oldest first: 100.0%, 40.0%")
    expect(row.locator("td").last).to_have_text("2")
    assert axe_violations(page) == []

    # the dashboard's own compare form
    page.get_by_label("Baseline (before)").select_option(before["id"])
    page.get_by_label("Candidate (after)").select_option(after["id"])
    page.get_by_role("button", name="Compare").click()
    expect(page).to_have_url(re.compile(rf"/evals/compare\?a={before['id']}&b={after['id']}"))
    expect(page.get_by_role("heading", name=re.compile("Gate verdict"))).to_contain_text(
        "failed")


def test_run_page_shows_what_ran_scorers_and_failed_cases(
        page: Page, evals: tuple[ConsoleKeel, dict[str, Any], dict[str, Any]]) -> None:
    ck, _, after = evals
    login(page, ck.url, ck.keys["viewer"])
    page.goto(ck.url + "/evals")
    page.get_by_role("link", name=after["id"][:12]).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("faq-suite")
    facts = page.locator("dl.facts").first
    for text in ("faq@2", "mock-fast", "faq-cases@1", "done"):
        expect(facts).to_contain_text(text)
    expect(page.get_by_role("link", name="faq@2")).to_have_attribute("href", "/prompts/faq?b=2")
    expect(page.locator("dl.facts").nth(1)).to_contain_text("40.0% of 10 executions")
    scorers = page.locator("table", has=page.locator("th", has_text="Mean score"))
    expect(scorers.locator("tbody tr", has_text="contains").locator("td").first).to_have_text(
        "40.0%")
    failed = page.locator("table", has=page.locator("th", has_text="Why it failed"))
    expect(failed.locator("tbody tr")).to_have_count(len(PARCEL_CASES))
    expect(failed.locator("tbody th")).to_have_text(PARCEL_CASES)
    expect(failed.locator("tbody tr").first).to_contain_text("does not contain")
    assert axe_violations(page) == []

    failed.locator("tbody tr").first.get_by_role("link").click()  # the case's trace
    expect(page.get_by_role("heading", level=1)).to_contain_text("Trace")
    expect(page.get_by_text("Question: Where is parcel p0 now?")).to_be_visible()


def test_comparing_two_runs_shows_flipped_cases_and_the_verdict(
        page: Page, evals: tuple[ConsoleKeel, dict[str, Any], dict[str, Any]]) -> None:
    ck, before, after = evals
    login(page, ck.url, ck.keys["viewer"])
    page.goto(ck.url + f"/evals/runs/{after['id']}")
    page.get_by_label("Baseline (before)").select_option(before["id"])
    page.get_by_role("button", name="Compare with this run").click()
    expect(page).to_have_url(re.compile(rf"a={before['id']}&b={after['id']}"))
    verdict = page.get_by_role("heading", name=re.compile("Gate verdict"))
    expect(verdict).to_contain_text("failed")
    expect(verdict).to_contain_text("regression")
    expect(page.locator("ul.notes").first).to_contain_text("regression: pass rate 100.0% -> 40.0%")
    sides = page.locator("table", has=page.locator("th", has_text="Candidate (after)"))
    expect(sides.locator("tr", has_text="Pass rate").locator("td").last).to_have_text(
        "-60.0 points")
    expect(page.get_by_role("heading", name="Passed, now failing: 6")).to_be_visible()
    flipped = page.locator("table", has=page.locator("th", has_text="Candidate's answer")).first
    expect(flipped.locator("tbody th")).to_have_text(PARCEL_CASES)
    expect(flipped.locator("tbody tr").first.locator("td").nth(0)).to_have_text("100%")
    expect(flipped.locator("tbody tr").first.locator("td").nth(1)).to_have_text("0%")
    expect(page.get_by_role("heading", name="Failed, now passing: 0")).to_be_visible()
    assert axe_violations(page) == []

    page.get_by_role("link", name="Swap baseline and candidate").click()
    expect(page.get_by_role("heading", name=re.compile("Gate verdict"))).to_contain_text("passed")
    expect(page.get_by_role("heading", name="Failed, now passing: 6")).to_be_visible()


def test_bad_input_is_a_clear_4xx(
        evals: tuple[ConsoleKeel, dict[str, Any], dict[str, Any]]) -> None:
    ck, before, after = evals
    c = _session(ck, ck.keys["viewer"])
    for path, status in (("/evals/runs/zz", 404), ("/evals/runs/" + "0" * 32, 404),
                         (f"/evals/runs/{before['id']}?after=x", 400),
                         (f"/evals/runs/{before['id']}?after=1:", 400),
                         (f"/evals/compare?a={before['id']}", 400),
                         (f"/evals/compare?b={before['id']}", 400),
                         (f"/evals/compare?a={before['id']}&b={before['id']}", 400),
                         (f"/evals/compare?a={before['id']}&b=not-hex", 404),
                         (f"/evals/compare?a={before['id']}&b=" + "f" * 40, 404)):
        r = c.get(path)
        assert r.status_code == status, (path, r.status_code, r.text[-400:])
        assert 'role="alert"' in r.text
    short = c.get(f"/evals/compare?a={before['id'][:10]}&b={after['id'][:10]}")
    assert short.status_code == 200 and "Passed, now failing: 6" in short.text
    assert c.get("/evals/compare").status_code == 200  # the picker alone
    assert c.get("/evals").status_code == 200  # and it keeps serving


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from databases(request.param, tmp_path)


def test_eval_pages_read_both_dialects(tmp_path: Path, any_database: str) -> None:
    with console_keel(tmp_path, requests=1, database_url=any_database) as ck:
        before, after = make_runs(ck, tmp_path)
        c = _session(ck, ck.keel.admin_key)
        listed = c.get("/evals")
        assert listed.status_code == 200 and after["id"][:12] in listed.text
        assert "oldest first: 100.0%, 40.0%" in listed.text
        run = c.get(f"/evals/runs/{after['id']}")
        assert run.status_code == 200 and "p5" in run.text
        compared = c.get("/evals/compare", params={"a": before["id"], "b": after["id"]})
        assert compared.status_code == 200 and "Passed, now failing: 6" in compared.text
