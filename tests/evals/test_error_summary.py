"""A run whose executions errored says why: the most common errors with their counts, in
the stored summary, the API, `keel eval run`'s output and the reports."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
import yaml

from keel.evals.runner import MAX_ERROR_KINDS, Tally
from keel.evals.scorers import Score
from tests.evals.test_eval_cli import keel, push_prompt, stored_runs, write_suite
from tests.evals.test_runner import ok_cases, write_jsonl
from tests.support.keel import running_keel

FAILING = {
    "providers": [{"name": "mock", "kind": "mock", "errors": {"server_error": 1.0}}],
    "models": [{"name": "mock", "provider": "mock"}],
}
WHY = "provider 'mock' failed (500): mock server error"


@pytest.fixture
def failing(tmp_path: Path, database_url: str) -> dict[str, str]:
    config = tmp_path / "keel.yaml"
    config.write_text(yaml.safe_dump(FAILING))
    return {"KEEL_DATA_DIR": str(tmp_path / "data"), "KEEL_DATABASE_URL": database_url,
            "KEEL_CONFIG": str(config), "KEEL_GIT_COMMIT": "0" * 40}


def test_a_run_where_every_execution_failed_names_the_most_common_error(
        failing: dict[str, str], tmp_path: Path) -> None:
    push_prompt(failing, tmp_path, None, "production")
    write_jsonl(tmp_path / "cases.jsonl", ok_cases(20, 20))
    suite = write_suite(tmp_path, retries=0)
    result = keel(failing, "eval", "run", str(suite), "-q")
    assert result.exit_code == 2, result.output
    note = f"all 20 executions failed; most common error (20\u00d7): {WHY}"
    assert note in " ".join(result.stdout.split())  # rich may wrap the line
    [run] = stored_runs(failing)
    summary = orjson.loads(run["summary"])
    assert summary["errors"] == [{"error": WHY, "count": 20}]
    assert summary["error_note"] == note
    assert summary["thresholds"] == {"ok": False, "judgeable": False, "failures": [note]}

    report = tmp_path / "run.html"
    junit = tmp_path / "run.xml"
    shown = keel(failing, "eval", "report", run["id"], "--html", str(report), "--junit",
                 str(junit))
    assert shown.exit_code == 0, shown.output
    html = report.read_text()
    assert "Why executions errored" in html and WHY.replace("'", "&#39;") in html
    assert note.replace("'", "&#39;") in html
    assert "most common error (20\u00d7)" in junit.read_text()


def test_the_api_returns_the_error_summary(failing: dict[str, str], tmp_path: Path) -> None:
    push_prompt(failing, tmp_path, None, "production")
    write_jsonl(tmp_path / "cases.jsonl", ok_cases(3, 3))
    keel(failing, "eval", "run", str(write_suite(tmp_path, retries=0)), "-q")
    [run] = stored_runs(failing)
    with running_keel(tmp_path / "api", FAILING, database_url=failing["KEEL_DATABASE_URL"]) as k:
        r = httpx.get(f"{k.url}/api/evals/runs/{run['id']}", headers=k.admin_headers())
    assert r.status_code == 200, r.text
    summary = r.json()["summary"]
    assert summary["errors"] == [{"error": WHY, "count": 3}]
    assert summary["error_note"].startswith("all 3 executions failed; most common error (3\u00d7)")


@pytest.fixture
def working(failing: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A keel whose mock answers, with the suite's prompt pushed."""
    env = {**failing, "KEEL_CONFIG": str(tmp_path / "ok.yaml")}
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump({
        "providers": [{"name": "mock", "kind": "mock"}],
        "models": [{"name": "mock", "provider": "mock"}]}))
    push_prompt(env, tmp_path, None, "production")
    return env


def test_a_partly_errored_run_names_its_most_common_error(
        working: dict[str, str], tmp_path: Path) -> None:
    env = working
    cases = ok_cases(10, 10)
    for c in cases[:3]:
        c["vars"] = {"ok": "yes"}  # the prompt's {{question}} is missing
    write_jsonl(tmp_path / "cases.jsonl", cases)
    result = keel(env, "eval", "run", str(write_suite(tmp_path)), "-q")
    assert result.exit_code == 2, result.output
    out = " ".join(result.stdout.split())
    assert "3 of 10 executions errored (30% > max_error_rate 10%); most common error (3\u00d7): " \
        in out
    [run] = stored_runs(env)
    summary = orjson.loads(run["summary"])
    assert summary["errors"][0]["count"] == 3 and "question" in summary["errors"][0]["error"]
    assert summary["error_note"].startswith("3 of 10 executions errored; most common error (3")


def test_a_judgeable_run_with_a_few_errors_still_says_why(
        working: dict[str, str], tmp_path: Path) -> None:
    env = working
    cases = ok_cases(20, 20)
    cases[0]["vars"] = {"ok": "yes"}  # 1 of 20 errored: under max_error_rate, so judged
    write_jsonl(tmp_path / "cases.jsonl", cases)
    result = keel(env, "eval", "run", str(write_suite(tmp_path)), "-q")
    [run] = stored_runs(env)
    assert orjson.loads(run["summary"])["thresholds"]["judgeable"] is True, result.output
    out = " ".join(result.stdout.split())
    assert "errors: 1 of 20 executions errored; most common error (1\u00d7): " in out, out


def test_the_error_count_is_bounded_and_ordered_by_count() -> None:
    tally = Tally()
    row = {"status": "errored", "cached": False, "cost_usd": 0.0, "input_tokens": 0,
           "output_tokens": 0, "case_id": "c"}
    for i in range(MAX_ERROR_KINDS + 50):
        tally.add({**row, "case_idx": i, "error": f"error {i}"}, [], 1, 0.0)
    for i in range(3):
        tally.add({**row, "case_idx": 10_000 + i, "error": "unused"},
                  [("judge", Score(0.0, None, "", error=f"reply {i} quoted",
                                   error_kind="unreadable"))], 1, 0.0)
    summary = tally.summary()
    assert len(tally.errors) == MAX_ERROR_KINDS and tally.errors_uncounted == 53
    assert summary["errors"][0] == {"error": "error 0", "count": 1}  # ties: by text
    assert summary["error_note"].endswith(f"(and {MAX_ERROR_KINDS} other errors)")
