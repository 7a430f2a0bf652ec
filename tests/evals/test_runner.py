"""The eval runner against a real in-process gateway: the mock provider and fake OpenAI and
Anthropic upstreams on loopback; runs, results, traces, the result cache, repeats and
flakiness, retries, thresholds, bad suites, a large dataset and a cancelled run."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from keel.config import parse_config
from keel.evals.datasets import Datasets
from keel.evals.runner import Runner, check_thresholds
from keel.evals.scorers import ScoreInput
from keel.evals.suite import Suite, SuiteError, load_suite, parse_suite
from keel.gateway.internal import LocalGateway
from keel.prompts import PromptSpec
from keel.server.state import AppState
from keel.store import Store
from keel.store import evals as q
from keel.store.schema import eval_results, eval_runs, traces
from tests.support.fake_anthropic import API_KEY, FakeAnthropic
from tests.support.fake_openai import FakeOpenAI
from tests.support.keel import keel_settings
from tests.support.servers import serve

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _commit(_isolated_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit under test comes from the environment (as in CI), never from git."""
    monkeypatch.setenv("KEEL_GIT_COMMIT", COMMIT)


# --- fake upstreams ----------------------------------------------------------------------


class ScriptedOpenAI(FakeOpenAI):
    """The fake OpenAI upstream, plus ``script``: error statuses for the next requests (each
    with ``retry-after: 0``), consumed one per request, then the normal behaviour."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[int] = []

    async def _common(self, request: Request) -> Response | None:
        if not self.script:
            return await super()._common(request)
        status = self.script.pop(0)
        body = orjson.loads(await request.body())
        self.requests.append({"path": request.url.path, "query": dict(request.query_params),
                              "headers": dict(request.headers), "body": body})
        return Response(orjson.dumps(self.error_body), status, headers={"retry-after": "0"},
                        media_type="application/json")


class AnsweringAnthropic(FakeAnthropic):
    """The fake Anthropic upstream with a per-request ``responder(body) -> text``."""

    def __init__(self) -> None:
        super().__init__()
        self.responder: Callable[[dict[str, Any]], str] | None = None

    def _content(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        if self.responder is None:
            return super()._content(body)
        return [{"type": "text", "text": self.responder(body)}], "end_turn"


@pytest.fixture(scope="module")
def openai_server() -> Iterator[tuple[ScriptedOpenAI, str]]:
    fake = ScriptedOpenAI()
    with serve(fake.app) as server:
        yield fake, server.url


@pytest.fixture(scope="module")
def anthropic_server() -> Iterator[tuple[AnsweringAnthropic, str]]:
    fake = AnsweringAnthropic()
    with serve(fake.app) as server:
        fake.url = server.url
        yield fake, server.url


@pytest.fixture
def oai(openai_server: tuple[ScriptedOpenAI, str]) -> ScriptedOpenAI:
    fake = openai_server[0]
    fake.mode, fake.status, fake.retry_after, fake.responder = "ok", 500, None, None
    fake.script = []
    fake.requests.clear()
    return fake


@pytest.fixture
def claude(anthropic_server: tuple[AnsweringAnthropic, str]) -> AnsweringAnthropic:
    fake = anthropic_server[0]
    fake.mode, fake.responder = "ok", None
    fake.requests.clear()
    return fake


def upstream_config(openai_url: str, anthropic_url: str | None = None) -> dict[str, Any]:
    providers: list[dict[str, Any]] = [
        {"name": "up", "kind": "openai", "base_url": openai_url + "/v1", "api_key": "sk-up"}]
    models: list[dict[str, Any]] = [
        {"name": "gpt", "provider": "up", "upstream": "gpt-up",
         "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}]
    if anthropic_url is not None:
        providers.append({"name": "claude-api", "kind": "anthropic", "api_key": API_KEY,
                          "base_url": anthropic_url})
        models.append({"name": "claude", "provider": "claude-api", "upstream": "claude-up",
                       "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0}})
    return {"providers": providers, "models": models}


# --- helpers -----------------------------------------------------------------------------


@asynccontextmanager
async def keel_state(tmp_path: Path, database_url: str,
                     config: dict[str, Any] | None = None) -> AsyncIterator[AppState]:
    """keel started in this process (no HTTP): the built-in mock config unless ``config``."""
    from keel.config import default_config

    cfg = parse_config(config, "test.yaml") if config is not None else default_config()
    state = AppState.build(keel_settings(tmp_path, database_url), cfg)
    await state.start()
    try:
        yield state
    finally:
        await state.aclose()


def runner(state: AppState, suite: Suite, **kw: Any) -> Runner:
    return Runner(state.store, state.prompts, LocalGateway(state.flow, feature=suite.spec.feature),
                  **kw)


def write_jsonl(path: Path, cases: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"\n".join(orjson.dumps(c) for c in cases) + b"\n")
    return path


def suite_of(tmp_path: Path, cases: list[dict[str, Any]] | None, **spec: Any) -> Suite:
    """A suite over ``cases`` (written to cases.jsonl next to the suite file)."""
    if cases is not None:
        write_jsonl(tmp_path / "cases.jsonl", cases)
        spec.setdefault("dataset", "cases.jsonl")
    spec.setdefault("scorers", [{"type": "length", "min_chars": 1}])
    return parse_suite(spec, tmp_path / "suite.yaml")


async def results(store: Store, run_id: str) -> list[dict[str, Any]]:
    return [r async for r in q.iter_results(store, run_id)]


async def all_runs(store: Store) -> list[dict[str, Any]]:
    async with store.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(sa.select(eval_runs))).all()]


async def count_results(store: Store, run_id: str) -> int:
    query = sa.select(sa.func.count()).select_from(eval_results).where(
        eval_results.c.run_id == run_id)
    async with store.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def eval_traces(state: AppState, run_id: str) -> list[dict[str, Any]]:
    await state.writer.flush()
    async with state.store.connect() as conn:
        rows = [dict(r._mapping) for r in (await conn.execute(sa.select(traces))).all()]
    out = []
    for row in rows:
        tags = row["tags"]
        if isinstance(tags, str):
            tags = orjson.loads(tags)
        if (tags or {}).get("keel.eval_run") == run_id:
            out.append({**row, "tags": tags})
    return out


def summary(run: dict[str, Any]) -> dict[str, Any]:
    return dict(orjson.loads(run["summary"]))


def question(body: dict[str, Any]) -> str:
    """The text of the last user message of an OpenAI or Anthropic request body."""
    content = body["messages"][-1]["content"]
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content)
    return str(content)


async def push_prompt(state: AppState, name: str = "support", model: str | None = "mock",
                      user: str = "Customer asks: {{question}}") -> None:
    data: dict[str, Any] = {"name": name, "messages": [
        {"role": "system", "content": "You are a concise support agent."},
        {"role": "user", "content": user}]}
    if model is not None:
        data["model"] = model
    await state.prompts.push(PromptSpec.parse(data))


# Custom scorers the suites point at (``type: python``).

def passes_when_ok(inp: ScoreInput) -> bool:
    return inp.variables.get("ok") == "yes"


def always_raises(inp: ScoreInput) -> bool:
    raise RuntimeError("boom")


async def block_when_asked(inp: ScoreInput) -> bool:
    if inp.variables.get("block"):
        await asyncio.sleep(3600)
    return True


# --- 1. the mock provider: runs, results, traces --------------------------------------------

MOCK_CASES = [
    {"id": f"c{i}", "vars": {"question": q},
     "messages": [{"role": "user", "content": f"{q} (ticket {i})"}]}
    for i, q in enumerate(["How do I reset my password?", "Where is my refund?",
                           "Can I change my billing address?", "Why was my card declined?"])
]


async def test_mock_suite_stores_one_run_per_target_with_results_and_traces(
        tmp_path: Path, database_url: str) -> None:
    suite = suite_of(tmp_path, MOCK_CASES, name="support-mock", feature="support-evals",
                     targets=["support@production", {"model": "mock", "name": "bare mock"}],
                     scorers=[{"type": "length", "min_chars": 1},
                              {"type": "regex", "pattern": "[A-Za-z]"}],
                     repeats=2, concurrency=3)
    async with keel_state(tmp_path, database_url) as state:
        await push_prompt(state)
        await state.prompts.set_label("support@1", "production")
        runs = await runner(state, suite).run(suite)
        assert [r["target"] for r in runs] == ["support@production (v1)", "bare mock"]
        assert len({r["id"] for r in runs}) == 2 and len({r["group_id"] for r in runs}) == 1
        for run, prompt in zip(runs, [("support", 1), (None, None)], strict=True):
            assert run["status"] == "done" and run["error"] is None
            assert run["suite"] == "support-mock" and run["model"] == "mock"
            assert (run["prompt_name"], run["prompt_version"]) == prompt
            assert (run["dataset_name"], run["dataset_version"], run["cases"]) == ("cases", 1, 4)
            assert orjson.loads(run["config"]) == suite.config_record()
            assert orjson.loads(run["config"])["repeats"] == 2
            assert run["git_commit"] == COMMIT
            assert run["finished_at"] >= run["started_at"]
            assert (run["executions"], run["passed"], run["failed"], run["errored"],
                    run["cached"]) == (8, 8, 0, 0, 0)
            rows = await results(state.store, run["id"])
            assert sorted((r["case_idx"], r["repeat"]) for r in rows) == \
                [(i, rep) for i in range(4) for rep in range(2)]
            assert [r["case_id"] for r in rows] == [f"c{i}" for i in range(4) for _ in range(2)]
            assert all(r["status"] == "passed" and r["output"] and not r["cached"]
                       for r in rows)
            assert run["cost_usd"] > 0
            assert run["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows))
            assert run["input_tokens"] == sum(r["input_tokens"] for r in rows) > 0
            assert run["output_tokens"] == sum(r["output_tokens"] for r in rows) > 0
            p50, p95, p99 = (run["latency_p50_ms"], run["latency_p95_ms"],
                             run["latency_p99_ms"])
            assert p50 is not None and p95 is not None and p99 is not None
            assert 0 <= p50 <= p95 <= p99 <= max(r["latency_ms"] for r in rows)
            s = summary(run)
            assert s["pass_rate"] == 1.0 and s["error_rate"] == 0.0
            assert (s["cases"], s["cases_all_passed"], s["flaky_cases"]) == (4, 4, 0)
            assert s["scorers"]["length"]["passed"] == 8
            assert s["scorers"]["regex"]["passed"] == 8
            assert s["thresholds"] == {"ok": True, "judgeable": True, "failures": []}
            assert s["full_cost_usd"] == pytest.approx(run["cost_usd"])

            found = await eval_traces(state, run["id"])
            assert len(found) == 8
            assert sorted(t["id"] for t in found) == sorted(r["trace_id"] for r in rows)
            for t in found:
                assert t["feature"] == "support-evals" and t["team"] == "eval"
                assert t["status"] == 200 and t["model_requested"] == "mock"
                assert (t["prompt_name"], t["prompt_version"]) == prompt
            assert sum(t["cost_usd"] for t in found) == pytest.approx(run["cost_usd"])
        listed = await q.list_runs(state.store, suite="support-mock")
        assert {r["id"] for r in listed} == {r["id"] for r in runs}


async def test_prompt_target_renders_variables_and_appends_case_messages(
        tmp_path: Path, database_url: str, oai: ScriptedOpenAI,
        openai_server: tuple[ScriptedOpenAI, str]) -> None:
    suite = suite_of(tmp_path, MOCK_CASES[:1], targets=[
        {"prompt": "support@1", "model": "gpt", "params": {"temperature": 0.5}}],
        params={"max_tokens": 50, "temperature": 0})
    async with keel_state(tmp_path, database_url, upstream_config(openai_server[1])) as state:
        await push_prompt(state, model=None)
        [run] = await runner(state, suite).run(suite)
    assert run["target"] == "support@1 on gpt" and run["model"] == "gpt"
    [sent] = [r["body"] for r in oai.requests]
    assert sent["model"] == "gpt-up" and sent["max_tokens"] == 50
    assert sent["temperature"] == 0.5  # the target's params win over the suite's
    assert [m["content"] for m in sent["messages"]] == [
        "You are a concise support agent.", "Customer asks: How do I reset my password?",
        "How do I reset my password? (ticket 0)"]


# --- 2. fake OpenAI and Anthropic upstreams, deterministic scorers --------------------------

QA = [("capital of France", "Paris"), ("2+2", "4"), ("colour of the sky", "blue"),
      ("largest planet", "Jupiter"), ("author of Hamlet", "Shakespeare")]
GPT_ANSWERS = {"capital of France": "The capital is Paris.", "2+2": "It is 4.",
               "colour of the sky": "It is green.", "largest planet": "jupiter",
               "author of Hamlet": "Marlowe."}
CLAUDE_ANSWERS = {"capital of France": "Paris", "2+2": "four", "colour of the sky": "Blue.",
                  "largest planet": "Jupiter.", "author of Hamlet": "Shakespeare."}
QA_CASES = [{"id": f"q{i}", "vars": {"q": q}, "expected": a} for i, (q, a) in enumerate(QA)]


def answer_from(answers: dict[str, str]) -> Callable[[dict[str, Any]], str]:
    def respond(body: dict[str, Any]) -> str:
        return answers[question(body).removeprefix("Q: ")]
    return respond


async def test_openai_and_anthropic_targets_scored_by_deterministic_scorers(
        tmp_path: Path, database_url: str, oai: ScriptedOpenAI, claude: AnsweringAnthropic,
        openai_server: tuple[ScriptedOpenAI, str],
        anthropic_server: tuple[AnsweringAnthropic, str]) -> None:
    oai.responder = answer_from(GPT_ANSWERS)
    claude.responder = answer_from(CLAUDE_ANSWERS)
    suite = suite_of(tmp_path, QA_CASES, targets=[{"prompt": "qa", "model": "gpt"},
                                                  {"prompt": "qa", "model": "claude"}],
                     params={"max_tokens": 64},
                     scorers=[{"type": "contains", "value": "{{expected}}"},
                              {"type": "regex", "pattern": r"\.$", "name": "sentence"}])
    config = upstream_config(openai_server[1], anthropic_server[1])
    async with keel_state(tmp_path, database_url, config) as state:
        await push_prompt(state, "qa", model=None, user="Q: {{q}}")
        gpt, anthropic = await runner(state, suite).run(suite)
        gpt_rows = await results(state.store, gpt["id"])
        claude_rows = await results(state.store, anthropic["id"])
    assert len(oai.requests) == 5 and len(claude.requests) == 5
    assert {r["body"]["model"] for r in oai.requests} == {"gpt-up"}
    assert {r["body"]["model"] for r in claude.requests} == {"claude-up"}
    assert all(r["body"]["system"] for r in claude.requests)

    # contains: 3 pass (jupiter matches case-insensitively); ends with '.': 4 pass
    assert (gpt["passed"], gpt["failed"], gpt["errored"]) == (2, 3, 0)
    s = summary(gpt)
    assert s["scorers"]["contains"] == {"passed": 3, "failed": 2, "errored": 0,
                                        "pass_rate": 0.6, "mean": 0.6}
    assert (s["scorers"]["sentence"]["passed"], s["scorers"]["sentence"]["failed"]) == (4, 1)
    assert s["pass_rate"] == 0.4
    assert [r["status"] for r in gpt_rows] == ["passed", "passed", "failed", "failed", "failed"]
    assert [r["output"] for r in gpt_rows] == [GPT_ANSWERS[q] for q, _ in QA]
    failed = orjson.loads(gpt_rows[2]["scores"])
    assert failed[0]["name"] == "contains" and failed[0]["passed"] is False
    assert "does not contain" in failed[0]["explanation"]

    # contains: 4 pass ("four" is not "4"); ends with '.': 3 pass
    assert (anthropic["passed"], anthropic["failed"], anthropic["errored"]) == (3, 2, 0)
    s = summary(anthropic)
    assert (s["scorers"]["contains"]["passed"], s["scorers"]["contains"]["failed"]) == (4, 1)
    assert (s["scorers"]["sentence"]["passed"], s["scorers"]["sentence"]["failed"]) == (3, 2)
    assert [r["status"] for r in claude_rows] == ["failed", "failed", "passed", "passed",
                                                  "passed"]
    for run, rows in ((gpt, gpt_rows), (anthropic, claude_rows)):
        assert run["cost_usd"] > 0
        assert run["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows))
        assert run["input_tokens"] == sum(r["input_tokens"] for r in rows)


# --- 3. the result cache --------------------------------------------------------------------


async def test_rerun_is_served_from_the_result_cache(
        tmp_path: Path, database_url: str, oai: ScriptedOpenAI,
        openai_server: tuple[ScriptedOpenAI, str]) -> None:
    oai.responder = answer_from(GPT_ANSWERS)
    suite = suite_of(tmp_path, QA_CASES, targets=[{"prompt": "qa", "model": "gpt"}],
                     scorers=[{"type": "contains", "value": "{{expected}}"}])
    async with keel_state(tmp_path, database_url, upstream_config(openai_server[1])) as state:
        await push_prompt(state, "qa", model=None, user="Q: {{q}}")
        [first] = await runner(state, suite).run(suite)
        assert len(oai.requests) == 5 and first["cached"] == 0 and first["cost_usd"] > 0
        first_traces = len(await eval_traces(state, first["id"]))

        [second] = await runner(state, suite).run(suite)
        assert len(oai.requests) == 5  # no upstream call at all
        assert second["cost_usd"] == 0 and second["cached"] == second["executions"] == 5
        assert summary(second)["full_cost_usd"] == pytest.approx(summary(first)["full_cost_usd"])
        assert summary(second)["full_cost_usd"] == pytest.approx(first["cost_usd"])
        assert (second["passed"], second["failed"]) == (first["passed"], first["failed"])
        assert second["input_tokens"] == first["input_tokens"]
        rows = await results(state.store, second["id"])
        assert all(r["cached"] and r["trace_id"] is None for r in rows)
        assert [r["output"] for r in rows] == [GPT_ANSWERS[q] for q, _ in QA]
        assert second["latency_p50_ms"] is not None
        assert first_traces == 5 and await eval_traces(state, second["id"]) == []

        [third] = await runner(state, suite, use_cache=False).run(suite)
        assert len(oai.requests) == 10
        assert third["cached"] == 0 and third["cost_usd"] == pytest.approx(first["cost_usd"])


async def test_repeats_are_separate_requests_and_all_cached(
        tmp_path: Path, database_url: str, oai: ScriptedOpenAI,
        openai_server: tuple[ScriptedOpenAI, str]) -> None:
    oai.responder = answer_from(GPT_ANSWERS)
    suite = suite_of(tmp_path, QA_CASES[:2], targets=[{"prompt": "qa", "model": "gpt"}],
                     repeats=3, scorers=[{"type": "contains", "value": "{{expected}}"}])
    async with keel_state(tmp_path, database_url, upstream_config(openai_server[1])) as state:
        await push_prompt(state, "qa", model=None, user="Q: {{q}}")
        [first] = await runner(state, suite).run(suite)
        assert len(oai.requests) == 6 and first["executions"] == 6 and first["cached"] == 0
        [second] = await runner(state, suite).run(suite)
        assert len(oai.requests) == 6
        assert second["cached"] == 6 and second["cost_usd"] == 0
        rows = await results(state.store, second["id"])
        assert sorted((r["case_idx"], r["repeat"]) for r in rows) == \
            [(i, rep) for i in range(2) for rep in range(3)]


# --- 4. repeats and flakiness ---------------------------------------------------------------


async def test_flaky_cases_are_counted_and_listed(
        tmp_path: Path, database_url: str, oai: ScriptedOpenAI,
        openai_server: tuple[ScriptedOpenAI, str]) -> None:
    # per question: which of its calls (1st, 2nd, 3rd) get the right answer
    right_on = {"steady": {1, 2, 3}, "once": {1}, "twice": {1, 3}, "never": set[int]()}
    calls: Counter[str] = Counter()

    def respond(body: dict[str, Any]) -> str:
        q = question(body).removeprefix("Q: ")
        calls[q] += 1
        return "OK" if calls[q] in right_on[q] else "nope"

    oai.responder = respond
    cases = [{"id": q, "vars": {"q": q}, "expected": "OK"} for q in right_on]
    suite = suite_of(tmp_path, cases, targets=[{"prompt": "qa", "model": "gpt"}], repeats=3,
                     concurrency=4, scorers=[{"type": "equals", "value": "{{expected}}"}])
    async with keel_state(tmp_path, database_url, upstream_config(openai_server[1])) as state:
        await push_prompt(state, "qa", model=None, user="Q: {{q}}")
        [run] = await runner(state, suite).run(suite)
        rows = await results(state.store, run["id"])
    assert len(oai.requests) == 12
    assert (run["executions"], run["passed"], run["failed"]) == (12, 6, 6)
    s = summary(run)
    assert (s["cases"], s["cases_all_passed"], s["flaky_cases"]) == (4, 1, 2)
    assert sorted((f["case"], round(f["pass_rate"], 4)) for f in s["flaky"]) == \
        [("once", round(1 / 3, 4)), ("twice", round(2 / 3, 4))]
    passes = Counter(r["case_id"] for r in rows if r["status"] == "passed")
    assert passes == {"steady": 3, "once": 1, "twice": 2}


# --- 5. retries -----------------------------------------------------------------------------


@pytest.mark.parametrize(("script", "requests"), [([429, 429], 3), ([500], 2), ([503, 429], 3)])
async def test_transient_upstream_errors_are_retried(
        tmp_path: Path, database_url: str, oai: ScriptedOpenAI,
        openai_server: tuple[ScriptedOpenAI, str], script: list[int], requests: int) -> None:
    oai.responder = answer_from(GPT_ANSWERS)
    oai.script = list(script)
    suite = suite_of(tmp_path, QA_CASES[:1], targets=[{"prompt": "qa", "model": "gpt"}],
                     retries=2, concurrency=1,
                     scorers=[{"type": "contains", "value": "{{expected}}"}])
    async with keel_state(tmp_path, database_url, upstream_config(openai_server[1])) as state:
        await push_prompt(state, "qa", model=None, user="Q: {{q}}")
        [run] = await runner(state, suite).run(suite)
        [row] = await results(state.store, run["id"])
        found = await eval_traces(state, run["id"])
    assert len(oai.requests) == requests
    assert (run["passed"], run["errored"]) == (1, 0)
    assert row["status"] == "passed" and row["error"] is None
    # every attempt is traced: the failed ones as errors, the last one answered
    assert sorted(t["status"] >= 400 for t in found) == [False] + [True] * len(script)
    assert row["trace_id"] in {t["id"] for t in found if t["status"] == 200}


async def test_a_rejected_request_is_not_retried(
        tmp_path: Path, database_url: str, oai: ScriptedOpenAI,
        openai_server: tuple[ScriptedOpenAI, str]) -> None:
    oai.responder = answer_from(GPT_ANSWERS)
    oai.script = [400]
    suite = suite_of(tmp_path, QA_CASES[:2], targets=[{"prompt": "qa", "model": "gpt"}],
                     retries=3, concurrency=1, threshold={"max_error_rate": 0.5},
                     scorers=[{"type": "contains", "value": "{{expected}}"}])
    async with keel_state(tmp_path, database_url, upstream_config(openai_server[1])) as state:
        await push_prompt(state, "qa", model=None, user="Q: {{q}}")
        [run] = await runner(state, suite).run(suite)
        rows = await results(state.store, run["id"])
    assert len(oai.requests) == 2  # the 400 once (no retry), then the second case
    assert (run["passed"], run["failed"], run["errored"]) == (1, 0, 1)
    assert rows[0]["status"] == "errored" and "rejected the request (400)" in rows[0]["error"]
    assert rows[0]["output"] is None and orjson.loads(rows[0]["scores"]) == []
    assert summary(run)["thresholds"]["judgeable"] is True


async def test_persistent_server_errors_leave_the_case_errored(
        tmp_path: Path, database_url: str, oai: ScriptedOpenAI,
        openai_server: tuple[ScriptedOpenAI, str]) -> None:
    oai.mode, oai.status, oai.retry_after = "status", 500, "0"
    suite = suite_of(tmp_path, QA_CASES[:1], targets=[{"prompt": "qa", "model": "gpt"}],
                     retries=2, scorers=[{"type": "contains", "value": "{{expected}}"}])
    async with keel_state(tmp_path, database_url, upstream_config(openai_server[1])) as state:
        await push_prompt(state, "qa", model=None, user="Q: {{q}}")
        [run] = await runner(state, suite).run(suite)
        [row] = await results(state.store, run["id"])
        [second] = await runner(state, suite).run(suite)
    assert len(oai.requests) == 6  # 1 + 2 retries, twice: a failure is never cached
    assert (run["passed"], run["failed"], run["errored"], run["executions"]) == (0, 0, 1, 1)
    assert row["status"] == "errored" and "failed (500): boom" in row["error"]
    assert row["output"] is None
    assert run["latency_p50_ms"] is None  # no answered execution
    s = summary(run)
    assert s["pass_rate"] == 0.0 and s["error_rate"] == 1.0
    assert s["thresholds"]["judgeable"] is False and s["thresholds"]["ok"] is False
    assert second["errored"] == 1 and second["cached"] == 0


# --- 6. thresholds --------------------------------------------------------------------------

SCORED_BY_VAR = [{"type": "python", "function": f"{__name__}:passes_when_ok",
                  "name": "passes_when_ok"}]


def ok_cases(passing: int, total: int) -> list[dict[str, Any]]:
    return [{"id": f"k{i}", "vars": {"question": f"Question number {i}?",
                                     "ok": "yes" if i < passing else "no"}}
            for i in range(total)]


@pytest.mark.parametrize(("threshold", "ok", "judgeable", "failure"), [
    ({"pass_rate": 0.7}, True, True, None),
    ({"pass_rate": 0.8}, False, True, "pass rate 70.0% < threshold 80.0%"),
    ({"scorers": {"passes_when_ok": 0.75}}, False, True,
     "scorer 'passes_when_ok' pass rate 70.0% < threshold 75.0%"),
    ({"max_cost_usd": 0.0}, False, True, "> max_cost_usd $0.0000"),
    ({"pass_rate": 0.5, "p95_latency_ms": 1e9}, True, True, None),
])
async def test_thresholds_against_a_finished_run(
        tmp_path: Path, database_url: str, threshold: dict[str, Any], ok: bool,
        judgeable: bool, failure: str | None) -> None:
    suite = suite_of(tmp_path, ok_cases(7, 10), targets=["support@1"], scorers=SCORED_BY_VAR,
                     threshold=threshold)
    async with keel_state(tmp_path, database_url) as state:
        await push_prompt(state)
        [run] = await runner(state, suite).run(suite)
    assert (run["passed"], run["failed"]) == (7, 3)
    verdict = summary(run)["thresholds"]
    assert (verdict["ok"], verdict["judgeable"]) == (ok, judgeable)
    if failure is None:
        assert verdict["failures"] == []
    else:
        assert len(verdict["failures"]) == 1 and failure in verdict["failures"][0]


async def test_too_many_errored_cases_make_a_run_unjudgeable(
        tmp_path: Path, database_url: str) -> None:
    cases = ok_cases(10, 10)
    for c in cases[:2]:
        c["vars"] = {"ok": "yes"}  # no question: the prompt cannot be rendered
    suite = suite_of(tmp_path, cases, targets=["support@1"], scorers=SCORED_BY_VAR,
                     threshold={"pass_rate": 0.5, "max_error_rate": 0.1})
    async with keel_state(tmp_path, database_url) as state:
        await push_prompt(state)
        [run] = await runner(state, suite).run(suite)
    assert (run["passed"], run["errored"]) == (8, 2)
    verdict = summary(run)["thresholds"]
    assert verdict["judgeable"] is False and verdict["ok"] is False
    assert verdict["failures"] == [
        "2 of 10 executions errored (20% > max_error_rate 10%); most common error (2\u00d7): "
        "prompt 'support@1' needs variable(s) question; pass them in 'variables' (it uses: "
        "question)"]
    lenient = suite_of(tmp_path, None, dataset="cases.jsonl", targets=["support@1"],
                       scorers=SCORED_BY_VAR, threshold={"pass_rate": 0.5,
                                                         "max_error_rate": 0.2})
    again = check_thresholds(lenient, {**run, "summary": summary(run)})
    assert again == {"ok": True, "judgeable": True, "failures": []}


# --- 7. bad input -----------------------------------------------------------------------------


async def test_a_missing_template_variable_errors_that_case_only(
        tmp_path: Path, database_url: str) -> None:
    cases = [{"id": "good1", "vars": {"question": "Where is my parcel?"}},
             {"id": "bad", "vars": {"topic": "parcels"}},
             {"id": "good2", "vars": {"question": "Can I get a refund?"}}]
    suite = suite_of(tmp_path, cases, targets=["support@1"], threshold={"max_error_rate": 0.5})
    async with keel_state(tmp_path, database_url) as state:
        await push_prompt(state)
        [run] = await runner(state, suite).run(suite)
        rows = await results(state.store, run["id"])
        found = await eval_traces(state, run["id"])
    assert (run["passed"], run["errored"], run["executions"]) == (2, 1, 3)
    assert [r["status"] for r in rows] == ["passed", "errored", "passed"]
    assert "needs variable(s) question" in rows[1]["error"]
    assert rows[1]["trace_id"] is None and len(found) == 2
    assert summary(run)["thresholds"]["judgeable"] is True


async def test_a_model_only_target_needs_case_messages(
        tmp_path: Path, database_url: str) -> None:
    suite = suite_of(tmp_path, [{"vars": {"question": "hi?"}}], targets=[{"model": "mock"}])
    async with keel_state(tmp_path, database_url) as state:
        [run] = await runner(state, suite).run(suite)
        [row] = await results(state.store, run["id"])
    assert row["status"] == "errored" and "has no prompt" in row["error"]
    assert summary(run)["thresholds"]["judgeable"] is False


@pytest.mark.parametrize(("spec", "message"), [
    ({"dataset": "nowhere.jsonl"}, "dataset: file '"),
    ({"dataset": "never-stored"}, "no dataset 'never-stored'"),
    ({"targets": ["nosuch@1"]}, "no prompt named 'nosuch'; prompts: nomodel, support"),
    ({"targets": ["support@staging"]}, "prompt 'support' has no label 'staging'"),
    ({"targets": ["support@7"]}, "prompt 'support' has no version 7"),
    ({"targets": ["nomodel@1"]}, "prompt 'nomodel@1' names no model; add model:"),
])
async def test_a_suite_that_cannot_run_is_refused_before_any_run_row(
        tmp_path: Path, database_url: str, spec: dict[str, Any], message: str) -> None:
    write_jsonl(tmp_path / "cases.jsonl", ok_cases(1, 1))
    suite = parse_suite({"dataset": "cases.jsonl", "targets": ["support@1"],
                         "scorers": [{"type": "length", "min_chars": 1}], **spec},
                        tmp_path / "suite.yaml")
    async with keel_state(tmp_path, database_url) as state:
        await push_prompt(state)
        await push_prompt(state, "nomodel", model=None)
        with pytest.raises(SuiteError) as err:
            await runner(state, suite).run(suite)
        assert await all_runs(state.store) == []
    assert message in err.value.message
    assert str(tmp_path / "suite.yaml") in err.value.message


async def test_a_stored_dataset_runs_by_name_and_version(
        tmp_path: Path, database_url: str) -> None:
    async with keel_state(tmp_path, database_url) as state:
        await push_prompt(state)
        ds = Datasets(state.store)
        await ds.import_file("support", write_jsonl(tmp_path / "a.jsonl", ok_cases(1, 3)))
        await ds.import_file("support", write_jsonl(tmp_path / "b.jsonl", ok_cases(1, 5)))
        latest = suite_of(tmp_path, None, dataset="support", targets=["support@1"])
        pinned = suite_of(tmp_path, None, dataset="support@1", targets=["support@1"])
        [a] = await runner(state, latest).run(latest)
        [b] = await runner(state, pinned).run(pinned)
    assert (a["dataset_name"], a["dataset_version"], a["executions"]) == ("support", 2, 5)
    assert (b["dataset_name"], b["dataset_version"], b["executions"]) == ("support", 1, 3)


async def test_an_unchanged_dataset_file_reuses_its_version(
        tmp_path: Path, database_url: str) -> None:
    suite = suite_of(tmp_path, ok_cases(2, 2), targets=["support@1"])
    async with keel_state(tmp_path, database_url) as state:
        await push_prompt(state)
        [first] = await runner(state, suite).run(suite)
        [second] = await runner(state, suite).run(suite)
        write_jsonl(tmp_path / "cases.jsonl", ok_cases(2, 3))
        [third] = await runner(state, suite).run(suite)
    assert [r["dataset_version"] for r in (first, second, third)] == [1, 1, 2]
    assert third["executions"] == 3 and third["cached"] == 2


@pytest.mark.parametrize(("data", "message"), [
    ({"targets": ["a@1"], "scorers": [{"type": "length", "min_chars": 1}]},
     "dataset: required key is missing"),
    ({"dataset": "x.jsonl", "targets": ["a@1"], "scorers": [{"type": "lenght"}]},
     "scorers[0].type: unknown scorer type 'lenght'"),
    ({"dataset": "x.jsonl", "targets": ["a@1"], "scorers": [{"type": "length"}],
      "repeat": 3}, "repeat: unknown key"),
    ({"dataset": "x.jsonl", "targets": [], "scorers": [{"type": "length", "min_chars": 1}]},
     "targets:"),
    ({"dataset": "x.jsonl", "targets": [{"params": {}}],
      "scorers": [{"type": "length", "min_chars": 1}]}, "a target needs prompt: and/or model:"),
    ({"dataset": "x.jsonl", "targets": ["a@1"], "scorers": [{"type": "length", "min_chars": 1}],
      "threshold": {"scorers": {"lenght": 0.9}}}, "threshold.scorers.lenght: no scorer"),
    ({"dataset": "x.jsonl", "targets": ["a@1"],
      "scorers": [{"type": "length", "min_chars": 1}, {"type": "length", "max_chars": 9}]},
     "two scorers are named 'length'"),
    (["not", "a", "mapping"], "a suite is a mapping"),
])
def test_invalid_suites_name_the_file_and_key(tmp_path: Path, data: Any, message: str) -> None:
    with pytest.raises(SuiteError) as err:
        parse_suite(data, tmp_path / "bad-suite.yaml")
    assert err.value.message.startswith(str(tmp_path / "bad-suite.yaml") + ": ")
    assert message in err.value.message


def test_suite_files_load_with_a_yaml_error_reported_by_line(tmp_path: Path) -> None:
    good = tmp_path / "nightly.yaml"
    good.write_text("dataset: cases.jsonl\ntargets: [support@production]\n"
                    "scorers:\n  - {type: contains, value: '{{expected}}'}\n")
    suite = load_suite(good)
    assert suite.name == "nightly" and suite.dataset_file == tmp_path / "cases.jsonl"
    assert suite.targets[0].prompt == "support@production"
    bad = tmp_path / "broken.yaml"
    bad.write_text("dataset: cases.jsonl\ntargets: [support@production\nscorers: []\n")
    with pytest.raises(SuiteError, match=r"broken\.yaml: not valid YAML at line \d"):
        load_suite(bad)
    with pytest.raises(SuiteError, match="suite file not found"):
        load_suite(tmp_path / "absent.yaml")


# --- 8. a large dataset through the bounded pipeline --------------------------------------


async def test_three_thousand_cases_run_to_completion(
        tmp_path: Path, database_url: str) -> None:
    n = 3000
    cases = [{"id": f"case-{i}", "messages": [{"role": "user", "content": f"Question {i}?"}]}
             for i in range(n)]
    suite = suite_of(tmp_path, cases, targets=[{"model": "mock"}], concurrency=32)
    seen: list[tuple[int, int]] = []
    async with keel_state(tmp_path, database_url) as state:
        r = runner(state, suite, progress=lambda done, total: seen.append((done, total)))
        [run] = await r.run(suite)
        stored = await count_results(state.store, run["id"])
        ids = {row["case_id"] async for row in q.iter_results(state.store, run["id"], page=700)}
    assert (run["status"], run["executions"], run["passed"]) == ("done", n, n)
    assert stored == n and len(ids) == n
    assert len(seen) == n and seen[-1] == (n, n)
    assert [d for d, _ in seen] == list(range(1, n + 1))


# --- 9. a run that fails part way -----------------------------------------------------------


async def test_a_cancelled_run_is_marked_failed_and_writes_nothing_after(
        tmp_path: Path, database_url: str) -> None:
    cases = [{"id": f"n{i}", "vars": {"question": f"Question {i}?"}} for i in range(4)]
    cases += [{"id": f"b{i}", "vars": {"question": f"Slow {i}?", "block": True}}
              for i in range(6)]
    suite = suite_of(tmp_path, cases, targets=["support@1"], concurrency=2,
                     scorers=[{"type": "python", "function": f"{__name__}:block_when_asked"}])
    four_done = asyncio.Event()

    def progress(done: int, total: int) -> None:
        if done == 4:
            four_done.set()

    async with keel_state(tmp_path, database_url) as state:
        await push_prompt(state)
        task = asyncio.create_task(runner(state, suite, progress=progress).run(suite))
        await asyncio.wait_for(four_done.wait(), 60)
        [running] = await all_runs(state.store)
        assert running["status"] == "running"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        [run] = await all_runs(state.store)
        rows = await results(state.store, run["id"])
        for _ in range(20):  # anything still going would get to write now
            await asyncio.sleep(0)
        await state.writer.flush()
        [after] = await all_runs(state.store)
        assert await count_results(state.store, run["id"]) == len(rows)
    assert run["status"] == "failed" and run["error"].startswith("CancelledError")
    assert run["finished_at"] is not None
    assert after == run
    assert [r["case_id"] for r in rows] == ["n0", "n1", "n2", "n3"]
    assert all(r["status"] == "passed" for r in rows)


async def test_a_raising_custom_scorer_errors_the_case_not_the_run(
        tmp_path: Path, database_url: str) -> None:
    suite = suite_of(tmp_path, ok_cases(2, 2), targets=["support@1"],
                     scorers=[{"type": "python", "function": f"{__name__}:always_raises"}],
                     threshold={"max_error_rate": 1.0})
    async with keel_state(tmp_path, database_url) as state:
        await push_prompt(state)
        [run] = await runner(state, suite).run(suite)
        rows = await results(state.store, run["id"])
    assert run["status"] == "done" and (run["passed"], run["errored"]) == (0, 2)
    assert all(r["status"] == "errored" and "RuntimeError: boom" in r["error"] for r in rows)
    assert all(r["output"] for r in rows)  # the answer is kept even when scoring failed
    assert summary(run)["scorers"]["python"]["errored"] == 2


async def test_a_request_the_gateway_refuses_is_an_errored_case_with_a_tagged_trace(
        tmp_path: Path, database_url: str) -> None:
    suite = suite_of(tmp_path, MOCK_CASES[:2], targets=["support@1"], feature="support-evals",
                     params={"temperature": 5}, retries=3, threshold={"max_error_rate": 1.0})
    async with keel_state(tmp_path, database_url) as state:
        await push_prompt(state)
        [run] = await runner(state, suite).run(suite)
        rows = await results(state.store, run["id"])
        found = await eval_traces(state, run["id"])
    assert (run["errored"], run["executions"]) == (2, 2)
    assert all(r["status"] == "errored" and "temperature" in r["error"] for r in rows)
    assert len(found) == 2  # refused at once (not retried), and still attributed
    assert sorted(t["id"] for t in found) == sorted(r["trace_id"] for r in rows)
    for t in found:
        assert t["status"] == 400 and t["feature"] == "support-evals" and t["team"] == "eval"
        assert (t["prompt_name"], t["prompt_version"]) == ("support", 1)


@pytest.mark.parametrize("how", ["cancel", "raise"])
async def test_a_run_failing_while_it_finishes_leaves_no_run_running(
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    suite = suite_of(tmp_path, MOCK_CASES, targets=["support@1", {"model": "mock"}])
    real = q.latency_percentiles
    calls = 0
    stuck = asyncio.Event()

    async def percentiles(store: Store, run_id: str, quantiles: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:  # the second target's run, after the first one is done
            if how == "raise":
                raise RuntimeError("database went away")
            stuck.set()
            await asyncio.sleep(3600)
        return await real(store, run_id, quantiles)

    monkeypatch.setattr(q, "latency_percentiles", percentiles)
    async with keel_state(tmp_path, database_url) as state:
        await push_prompt(state)
        task = asyncio.create_task(runner(state, suite).run(suite))
        if how == "cancel":
            await asyncio.wait_for(stuck.wait(), 60)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            with pytest.raises(RuntimeError, match="database went away"):
                await task
        runs = await all_runs(state.store)
        counts = [await count_results(state.store, r["id"]) for r in runs]
    by_target = {r["target"]: r for r in runs}
    assert by_target["support@1"]["status"] == "done"
    assert by_target["mock"]["status"] == "failed" and by_target["mock"]["error"]
    assert counts == [8 // 2, 8 // 2]  # every result was written before the failure
