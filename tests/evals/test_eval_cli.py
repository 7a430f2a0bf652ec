"""``keel eval run`` end to end: exit codes 0/1/2, the printed report, caching across
invocations, dataset errors stopping or skipped, and bad suites refused with a message on
stderr and no run row left behind."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner, Result

from keel.cli.main import main
from keel.store import Store
from keel.store.schema import eval_runs
from tests.evals.test_runner import COMMIT, ScriptedOpenAI, ok_cases, write_jsonl
from tests.support.servers import serve

MOCK_CONFIG = {
    "providers": [{"name": "mock", "kind": "mock"}],
    "models": [{"name": "mock", "provider": "mock",
                "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}}],
}
PROMPT = {"name": "support", "model": "mock", "messages": [
    {"role": "system", "content": "You are a concise support agent."},
    {"role": "user", "content": "Customer asks: {{question}}"}]}
SCORER = {"type": "python", "function": "tests.evals.test_runner:passes_when_ok",
          "name": "ok-var"}


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    config = tmp_path / "keel.yaml"
    config.write_text(yaml.safe_dump(MOCK_CONFIG))
    return {"KEEL_DATA_DIR": str(tmp_path / "data"), "KEEL_DATABASE_URL": database_url,
            "KEEL_CONFIG": str(config), "KEEL_GIT_COMMIT": COMMIT}


def keel(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def push_prompt(env: dict[str, str], tmp_path: Path, spec: dict[str, Any] | None = None,
                *labels: str) -> None:
    path = tmp_path / "prompt.yaml"
    path.write_text(yaml.safe_dump(spec or PROMPT))
    label_args = [a for label in labels for a in ("--label", label)]
    result = keel(env, "prompts", "push", str(path), *label_args)
    assert result.exit_code == 0, result.output


def write_suite(tmp_path: Path, name: str = "suite.yaml", **spec: Any) -> Path:
    spec.setdefault("dataset", "cases.jsonl")
    spec.setdefault("targets", ["support@production"])
    spec.setdefault("scorers", [SCORER])
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def stored_runs(env: dict[str, str]) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        store = Store(env["KEEL_DATABASE_URL"])
        try:
            await store.upgrade()
            async with store.connect() as conn:
                rows = (await conn.execute(sa.select(eval_runs)
                                           .order_by(eval_runs.c.started_at))).all()
            return [dict(r._mapping) for r in rows]
        finally:
            await store.aclose()

    return asyncio.run(go())


@pytest.fixture
def ready(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A pushed prompt labelled production, and 10 cases of which 7 pass."""
    push_prompt(env, tmp_path, None, "production")
    write_jsonl(tmp_path / "cases.jsonl", ok_cases(7, 10))
    return env


# --- exit codes -------------------------------------------------------------------------


def test_a_passing_suite_exits_0_with_a_report_and_a_stored_run(
        ready: dict[str, str], tmp_path: Path) -> None:
    suite = write_suite(tmp_path, name="nightly.yaml", feature="support-nightly",
                        threshold={"pass_rate": 0.7})
    result = keel(ready, "eval", "run", str(suite), "-q")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "nightly · support@production (v1)" in out
    assert "dataset cases@1 · 10 cases x 1 · pass rate 70.0% · passed 7 · failed 3" in out
    assert "errored 0" in out and f"commit {COMMIT[:12]}" in out
    assert "ok-var" in out and "threshold:" not in out
    [run] = stored_runs(ready)
    assert (run["status"], run["suite"], run["passed"], run["failed"]) == ("done", "nightly",
                                                                          7, 3)
    assert run["git_commit"] == COMMIT and run["dataset_name"] == "cases"

    listed = keel(ready, "eval", "runs", "--json")
    assert listed.exit_code == 0
    assert [orjson.loads(line)["id"] for line in listed.stdout.splitlines()] == [run["id"]]
    shown = keel(ready, "eval", "show", run["id"][:10], "--failures")
    assert shown.exit_code == 0 and "pass rate 70.0%" in shown.stdout
    assert shown.stdout.count("failed case k") == 3
    assert "ok-var: passes_when_ok returned False" in shown.stdout

    traces = keel(ready, "traces", "--json", "--feature", "support-nightly", "--limit", "50")
    rows = [orjson.loads(line) for line in traces.stdout.splitlines()]
    assert len(rows) == 10 and {r["team"] for r in rows} == {"eval"}


def test_a_broken_threshold_exits_1_naming_it(ready: dict[str, str], tmp_path: Path) -> None:
    suite = write_suite(tmp_path, threshold={"pass_rate": 0.8})
    result = keel(ready, "eval", "run", str(suite), "--quiet")
    assert result.exit_code == 1, result.output
    assert "threshold: pass rate 70.0% < threshold 80.0%" in result.stdout
    assert [r["status"] for r in stored_runs(ready)] == ["done"]


def test_too_many_errored_cases_exit_2(ready: dict[str, str], tmp_path: Path) -> None:
    cases = ok_cases(10, 10)
    for c in cases[:3]:
        c["vars"] = {"ok": "yes"}  # the prompt's {{question}} is missing
    write_jsonl(tmp_path / "cases.jsonl", cases)
    suite = write_suite(tmp_path, threshold={"pass_rate": 0.5})
    result = keel(ready, "eval", "run", str(suite), "-q")
    assert result.exit_code == 2, result.output
    assert "3 of 10 executions errored (30% > max_error_rate 10%)" in result.stdout
    [run] = stored_runs(ready)
    assert (run["status"], run["errored"], run["passed"]) == ("done", 3, 7)
    shown = keel(ready, "eval", "show", run["id"], "--failures")
    assert "needs variable(s) question" in shown.stdout


def test_every_target_must_pass_for_exit_0(ready: dict[str, str], tmp_path: Path) -> None:
    push_prompt(ready, tmp_path, {**PROMPT, "messages": [
        {"role": "user", "content": "Short answer please: {{question}}"}]}, "candidate")
    suite = write_suite(tmp_path, targets=["support@production", "support@candidate"],
                        threshold={"pass_rate": 0.7})
    result = keel(ready, "eval", "run", str(suite), "-q")
    assert result.exit_code == 0, result.output
    assert "support@candidate (v2)" in result.stdout
    runs = stored_runs(ready)
    assert len(runs) == 2 and len({r["group_id"] for r in runs}) == 1
    assert sorted(r["prompt_version"] for r in runs) == [1, 2]


def test_repeats_option_and_the_cache_across_invocations(
        ready: dict[str, str], tmp_path: Path) -> None:
    suite = write_suite(tmp_path, threshold={"pass_rate": 0.7})
    first = keel(ready, "eval", "run", str(suite), "--repeats", "2", "-c", "4")
    assert first.exit_code == 0, first.output
    assert "10 cases x 2" in first.stdout and "0 from cache" in first.stdout
    assert "20/20" in first.stderr  # the progress bar, on stderr
    assert "20/20" not in first.stdout
    again = keel(ready, "eval", "run", str(suite), "--repeats", "2", "-q")
    assert "20 from cache" in again.stdout and "cost $0.0000 spent" in again.stdout
    fresh = keel(ready, "eval", "run", str(suite), "--no-cache", "-q")
    assert "10 cases x 1" in fresh.stdout and "0 from cache" in fresh.stdout
    runs = stored_runs(ready)
    assert [(r["executions"], r["cached"]) for r in runs] == [(20, 0), (20, 20), (10, 0)]
    assert runs[1]["cost_usd"] == 0 and runs[2]["cost_usd"] == pytest.approx(
        runs[0]["cost_usd"] / 2)


@pytest.fixture(scope="module")
def fake_upstream() -> Iterator[tuple[ScriptedOpenAI, str]]:
    fake = ScriptedOpenAI()
    with serve(fake.app) as server:
        yield fake, server.url


def test_a_real_upstream_is_not_called_again_for_cached_answers(
        env: dict[str, str], tmp_path: Path,
        fake_upstream: tuple[ScriptedOpenAI, str]) -> None:
    fake, url = fake_upstream
    fake.requests.clear()
    fake.responder = lambda body: "Your order ships tomorrow."
    config = tmp_path / "upstream.yaml"
    config.write_text(yaml.safe_dump({
        "providers": [{"name": "up", "kind": "openai", "base_url": url + "/v1",
                       "api_key": "sk-up"}],
        "models": [{"name": "gpt", "provider": "up",
                    "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}]}))
    env = {**env, "KEEL_CONFIG": str(config)}
    write_jsonl(tmp_path / "cases.jsonl", [
        {"id": "ship", "messages": [{"role": "user", "content": "When does it ship?"}],
         "expected": "ships"},
        {"id": "refund", "messages": [{"role": "user", "content": "Refund?"}],
         "expected": "refund"}])
    suite = write_suite(tmp_path, targets=[{"model": "gpt"}],
                        scorers=[{"type": "contains", "value": "{{expected}}"}],
                        threshold={"pass_rate": 0.5})
    assert keel(env, "eval", "run", str(suite), "-q").exit_code == 0
    assert len(fake.requests) == 2
    assert keel(env, "eval", "run", str(suite), "-q").exit_code == 0
    assert len(fake.requests) == 2
    assert keel(env, "eval", "run", str(suite), "-q", "--no-cache").exit_code == 0
    assert len(fake.requests) == 4
    assert [(r["passed"], r["failed"], r["cached"]) for r in stored_runs(env)] == [
        (1, 1, 0), (1, 1, 2), (1, 1, 0)]


# --- bad input ----------------------------------------------------------------------------


def refused(env: dict[str, str], suite: Path, *args: str) -> str:
    """Run a suite that must not run: exit 2, the reason on stderr, no run left running."""
    result = keel(env, "eval", "run", str(suite), "-q", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: "), result.output
    assert not [r for r in stored_runs(env) if r["status"] == "running"]
    return " ".join(result.stderr.split())


@pytest.mark.parametrize(("spec", "message"), [
    ({"dataset": "missing.jsonl"}, "dataset: file '"),
    ({"dataset": "never-imported"}, "dataset: no dataset 'never-imported'; datasets: none yet"),
    ({"scorers": [{"type": "containz", "value": "x"}]},
     "scorers[0].type: unknown scorer type 'containz'"),
    ({"targets": ["supprt@production"]}, "no prompt named 'supprt'; prompts: support"),
    ({"targets": ["support@staging"]}, "prompt 'support' has no label 'staging'; labels: "
                                       "latest, production"),
    ({"targets": [{"model": "mock"}], "datset": "cases.jsonl"},
     "datset: unknown key 'datset'; did you mean 'dataset'?"),
    ({"repeats": 0}, "repeats:"),
])
def test_a_bad_suite_exits_2_with_the_reason(
        ready: dict[str, str], tmp_path: Path, spec: dict[str, Any], message: str) -> None:
    suite = write_suite(tmp_path, **spec)
    err = refused(ready, suite)
    assert str(suite) in err and message in err
    assert stored_runs(ready) == []


def test_a_prompt_without_a_model_needs_one_on_the_target(
        env: dict[str, str], tmp_path: Path) -> None:
    push_prompt(env, tmp_path, {k: v for k, v in PROMPT.items() if k != "model"}, "production")
    write_jsonl(tmp_path / "cases.jsonl", ok_cases(2, 2))
    err = refused(env, write_suite(tmp_path))
    assert "prompt 'support@production' names no model; add model: to the target" in err
    ok = keel(env, "eval", "run", str(write_suite(
        tmp_path, targets=[{"prompt": "support@production", "model": "mock"}])), "-q")
    assert ok.exit_code == 0, ok.output
    assert "support@production (v1) on mock" in ok.stdout


def test_yaml_errors_and_missing_suite_files_exit_2(env: dict[str, str],
                                                    tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: cases.jsonl\ntargets: [support@production\nscorers: {}\n")
    err = refused(env, bad)
    assert "bad.yaml: not valid YAML at line" in err
    err = refused(env, tmp_path / "absent.yaml")
    assert "absent.yaml: suite file not found" in err
    listed = tmp_path / "list.yaml"
    listed.write_text("- dataset: cases.jsonl\n")
    assert "a suite is a mapping" in refused(env, listed)


def test_a_malformed_dataset_line_stops_the_run_or_is_skipped(
        ready: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "cases.jsonl").write_text(
        '{"vars": {"question": "Where is my parcel?", "ok": "yes"}}\n'
        '{"vars": {"question": "Refund?", "ok": "yes"}\n'
        '{"vars": {"question": "Invoice?", "ok": "yes"}}\n'
        '{"question": "no vars key"}\n')
    suite = write_suite(tmp_path)
    err = refused(ready, suite)
    assert "cases.jsonl:2: not valid JSON" in err
    assert stored_runs(ready) == []
    assert "cases.jsonl:2" in refused(ready, suite, "--on-error", "stop")
    result = keel(ready, "eval", "run", str(suite), "-q", "--on-error", "skip")
    assert result.exit_code == 0, result.output
    [run] = stored_runs(ready)
    assert (run["cases"], run["executions"], run["passed"]) == (2, 2, 2)
    assert "2 cases x 1" in result.stdout


def test_a_stored_dataset_can_be_named_instead_of_a_file(
        ready: dict[str, str], tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "import.jsonl", ok_cases(4, 4))
    imported = keel(ready, "datasets", "import", "support-cases", str(data))
    assert imported.exit_code == 0, imported.output
    suite = write_suite(tmp_path, dataset="support-cases")
    result = keel(ready, "eval", "run", str(suite), "-q")
    assert result.exit_code == 0, result.output
    assert "dataset support-cases@1 · 4 cases" in result.stdout


def test_help_lists_the_exit_codes() -> None:
    result = CliRunner().invoke(main, ["eval", "run", "--help"])
    assert result.exit_code == 0 and "--on-error" in result.output
    result = CliRunner().invoke(main, ["eval", "--help"])
    assert "0 passed, 1 threshold broken" in " ".join(result.output.split())


def test_a_run_that_crashes_exits_2_and_is_marked_failed(
        ready: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from keel.store import evals as q

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(q, "latency_percentiles", broken)
    result = keel(ready, "eval", "run", str(write_suite(tmp_path)), "-q")
    assert result.exit_code == 2, result.output
    assert "error: RuntimeError: disk full" in result.stderr
    [run] = stored_runs(ready)
    assert run["status"] == "failed" and run["error"] == "RuntimeError: disk full"


def test_an_unreachable_store_exits_2(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "cases.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    suite = write_suite(tmp_path, targets=[{"model": "mock"}],
                        scorers=[{"type": "length", "min_chars": 1}])
    result = keel({"KEEL_DATABASE_URL": "postgresql://keel@127.0.0.1:1/keel",
                   "KEEL_DATA_DIR": str(tmp_path / "data"), "KEEL_GIT_COMMIT": COMMIT},
                  "eval", "run", str(suite), "-q")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "127.0.0.1" in result.stderr
