"""The release gate end to end: a candidate prompt and its production baseline run side by
side through an in-process gateway against a fake OpenAI server whose answers are noisy
(like sampling at temperature > 0). A planted regression must fire; a no-op change must
not, across 10 seeded runs. Also: scheduled suites and their regression events."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner

from keel.config import EvalsConfig, ScheduledSuite, parse_config
from keel.evals.gate import run_gate
from keel.evals.runner import Runner
from keel.evals.schedule import due_slot
from keel.evals.suite import SuiteError, parse_suite
from keel.gateway.internal import LocalGateway
from keel.prompts import PromptSpec
from keel.server.state import AppState
from keel.store import evals as q
from tests.support.fake_openai import FakeOpenAI
from tests.support.keel import keel_settings
from tests.support.servers import ThreadServer, serve

CASES = 200
GOOD, BAD = 0.85, 0.55  # chance of a right answer: a sound prompt, a regressed one


class NoisyModel:
    """Answers right with a probability set by the system prompt; the draw hashes the seed,
    the whole prompt and the question, so two prompt versions (even equivalent ones) get
    independent noise, and each seed is a different sample."""

    def __init__(self) -> None:
        self.seed = 0

    def __call__(self, body: dict[str, Any]) -> str:
        system, question = body["messages"][0]["content"], body["messages"][-1]["content"]
        p = BAD if "terse" in system else GOOD
        h = hashlib.sha256(f"{self.seed}|{system}|{question}".encode()).digest()
        draw = int.from_bytes(h[:8], "big") / 2**64
        n = question.rsplit(" ", 1)[-1]
        return f"The code is ANSWER-{n}." if draw < p else "I am not sure."


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeOpenAI, ThreadServer, NoisyModel]]:
    model = NoisyModel()
    f = FakeOpenAI()
    f.responder = model
    with serve(f.app) as server:
        yield f, server, model


def _config(url: str) -> Any:
    return parse_config({
        "providers": [{"name": "up", "kind": "openai", "base_url": url + "/v1",
                       "api_key": "sk-x"}],
        "models": [{"name": "gpt-x", "provider": "up",
                    "price": {"input_per_mtok": 1.0, "output_per_mtok": 4.0}}]}, "test.yaml")


def _spec(system: str) -> PromptSpec:
    return PromptSpec.parse({"name": "lookup", "model": "gpt-x", "messages": [
        {"role": "system", "content": system},
        {"role": "user", "content": "Give the code for item {{n}}"}]})


def _write_suite(tmp: Path, **extra: Any) -> Path:
    lines = [orjson.dumps({"vars": {"n": str(i)}, "expected": f"ANSWER-{i}",
                           "id": f"item-{i}"}) for i in range(CASES)]
    (tmp / "cases.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    suite = {"name": "lookup", "dataset": "cases.jsonl", "targets": ["lookup@candidate"],
             "scorers": [{"type": "contains", "value": "{{expected}}"}],
             "concurrency": 16, "gate": {"baseline": "production"}, **extra}
    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


async def _state(tmp: Path, url: str, database_url: str | None = None) -> AppState:
    state = AppState.build(keel_settings(tmp, database_url), _config(url))
    await state.start()
    prod, _ = await state.prompts.push(_spec("You look up item codes."))
    await state.prompts.set_label(f"lookup@{prod.version}", "production")
    return state


async def _gate(state: AppState, path: Path, candidate_system: str) -> Any:
    cand, _ = await state.prompts.push(_spec(candidate_system))
    await state.prompts.set_label(f"lookup@{cand.version}", "candidate")
    from keel.evals.suite import load_suite

    runner = Runner(state.store, state.prompts, LocalGateway(state.flow), use_cache=False)
    return await run_gate(runner, load_suite(path))


async def test_no_op_change_never_fires_across_10_seeded_runs_and_a_regression_does(
        tmp_path: Path, fake: tuple[FakeOpenAI, ThreadServer, NoisyModel]) -> None:
    _, server, model = fake
    state = await _state(tmp_path, server.url)
    path = _write_suite(tmp_path)
    try:
        codes = []
        for seed in range(10):
            model.seed = seed
            # the same instructions, reworded: a new version, the same behaviour
            outcome = await _gate(state, path, f"You look up item codes (revision {seed}).")
            codes.append(outcome.verdict.code)
            assert outcome.comparison.cases_compared == CASES
            # noise is real: the runs differ case by case, in both directions
            assert outcome.comparison.worse > 0 and outcome.comparison.better > 0
        assert codes == [0] * 10
        fired = []
        for seed in range(3):
            model.seed = 100 + seed
            outcome = await _gate(state, path, "You look up item codes. Be terse.")
            fired.append(outcome.verdict.code)
            assert outcome.verdict.regression
            assert outcome.candidate["role"] == "candidate"
            assert outcome.baseline["role"] == "baseline"
            assert outcome.candidate["group_id"] == outcome.baseline["group_id"]
            assert outcome.comparison.pass_to_fail.count > outcome.comparison.fail_to_pass.count
        assert fired == [1, 1, 1]
    finally:
        await state.aclose()


async def test_gate_breaks_on_an_absolute_threshold_and_refuses_bad_baselines(
        tmp_path: Path, fake: tuple[FakeOpenAI, ThreadServer, NoisyModel]) -> None:
    _, server, model = fake
    model.seed = 7
    state = await _state(tmp_path, server.url)
    try:
        # no regression against the baseline, but below the suite's absolute bar
        outcome = await _gate(state, _write_suite(tmp_path, threshold={"pass_rate": 0.99}),
                              "You look up item codes, carefully.")
        assert outcome.verdict.code == 1 and not outcome.verdict.regression
        assert any("pass rate" in r and "99" in r for r in outcome.verdict.reasons)
        with pytest.raises(SuiteError, match="no label 'staging'"):
            await _gate(state, _write_suite(tmp_path, gate={"baseline": "staging"}), "x y")
        two = parse_suite({"dataset": "cases.jsonl", "targets": ["lookup@1", "lookup@2"],
                           "scorers": [{"type": "contains", "value": "x"}]},
                          tmp_path / "s.yaml")
        runner = Runner(state.store, state.prompts, LocalGateway(state.flow))
        with pytest.raises(SuiteError, match="one candidate"):
            await run_gate(runner, two, "production")
        assert not [r for r in await q.list_runs(state.store) if r["status"] == "running"]
    finally:
        await state.aclose()


def test_cli_gate_exit_codes_and_report_files(
        tmp_path: Path, fake: tuple[FakeOpenAI, ThreadServer, NoisyModel]) -> None:
    import asyncio
    import xml.etree.ElementTree as ET

    from keel.cli.main import main

    _, server, model = fake
    model.seed = 11
    cfg = tmp_path / "keel.yaml"
    cfg.write_text(yaml.safe_dump({
        "providers": [{"name": "up", "kind": "openai", "base_url": server.url + "/v1",
                       "api_key": "sk-x"}],
        "models": [{"name": "gpt-x", "provider": "up"}]}))
    env = {"KEEL_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
           "KEEL_DATA_DIR": str(tmp_path / "data"), "KEEL_CONFIG": str(cfg)}

    async def push(system: str, label: str) -> None:
        state = AppState.build(keel_settings(tmp_path, env["KEEL_DATABASE_URL"]),
                               _config(server.url))
        await state.start()
        try:
            v, _ = await state.prompts.push(_spec(system))
            await state.prompts.set_label(f"lookup@{v.version}", label)
        finally:
            await state.aclose()

    asyncio.run(push("You look up item codes.", "production"))
    asyncio.run(push("You look up item codes. Be terse.", "candidate"))
    path = _write_suite(tmp_path)
    out = CliRunner().invoke(main, ["eval", "gate", str(path), "-q", "--junit",
                                    str(tmp_path / "g.xml"), "--json", str(tmp_path / "g.json"),
                                    "--html", str(tmp_path / "g.html")], env=env)
    assert out.exit_code == 1, out.output
    assert "gate: FAILED" in out.output and "pass->fail" in out.output
    report = orjson.loads((tmp_path / "g.json").read_bytes())
    assert report["verdict"]["code"] == 1 and report["verdict"]["regression"] is True
    root = ET.parse(tmp_path / "g.xml").getroot()
    gate_cases = [c for c in root.iter("testcase") if c.get("classname") == "keel.gate"]
    assert len(gate_cases) == 1 and gate_cases[0].find("failure") is not None
    assert "lookup" in (tmp_path / "g.html").read_text()
    # the production label as candidate too: a no-op; the answers are cached now -> free
    asyncio.run(push("You look up item codes.", "candidate"))
    out = CliRunner().invoke(main, ["eval", "gate", str(path), "-q"], env=env)
    assert out.exit_code == 0, out.output
    # a missing baseline label is an error: exit 2
    out = CliRunner().invoke(main, ["eval", "gate", str(path), "-q", "--baseline", "nope"],
                             env=env)
    assert out.exit_code == 2 and "no label 'nope'" in out.output


def test_due_slot_is_daily_after_the_time_of_day() -> None:
    day = 1_795_000_000.0 - (1_795_000_000 % 86400)  # a UTC midnight
    assert due_slot("03:00", day + 2 * 3600) is None
    assert due_slot("03:00", day + 3 * 3600) is not None
    assert due_slot("03:00", day + 23 * 3600) == due_slot("03:00", day + 3 * 3600)
    assert due_slot("03:00", day + 27 * 3600) != due_slot("03:00", day + 3 * 3600)


async def test_scheduled_suite_runs_once_per_day_across_replicas_and_records_regressions(
        tmp_path: Path, database_url: str,
        fake: tuple[FakeOpenAI, ThreadServer, NoisyModel]) -> None:
    _, server, model = fake
    model.seed = 21
    a = await _state(tmp_path / "a", server.url, database_url)
    b = AppState.build(keel_settings(tmp_path / "b", database_url), _config(server.url))
    await b.start()
    try:
        cand, _ = await a.prompts.push(_spec("You look up item codes. Be terse."))
        await a.prompts.set_label(f"lookup@{cand.version}", "candidate")
        await b.prompts.refresh(force=True)
        path = _write_suite(tmp_path, concurrency=32)
        good = _write_suite(tmp_path / "a", targets=["lookup@production"], gate={},
                            threshold={"pass_rate": 0.5})
        cfg = EvalsConfig(schedule=[
            ScheduledSuite(suite=str(path), at="02:00"),
            ScheduledSuite(suite="a/suite.yaml", at="02:00"),  # relative to the base dir
            ScheduledSuite(suite="missing.yaml", at="02:00")])
        sched_a = a.eval_scheduler(cfg, tmp_path)
        sched_b = b.eval_scheduler(cfg, tmp_path)
        day = 1_795_000_000.0 - (1_795_000_000 % 86400)
        assert await sched_a.tick(day + 3600) == []  # not yet due
        ran_a = await sched_a.tick(day + 3 * 3600)
        ran_b = await sched_b.tick(day + 3 * 3600 + 60)  # the other replica: already claimed
        assert ran_b == [] and len(ran_a) == 3
        by_file = {Path(r["suite_file"]).name: r for r in ran_a}
        assert good.exists()
        codes = sorted(r["code"] for r in ran_a)
        assert codes == [0, 1, 2]
        assert by_file["missing.yaml"]["code"] == 2
        events = await q.list_events(a.store)
        kinds = sorted(e["kind"] for e in events)
        assert kinds == ["error", "regression"]
        regression = next(e for e in events if e["kind"] == "regression")
        assert regression["suite"] == "lookup" and regression["run_id"]
        assert orjson.loads(regression["detail"])["reasons"]
        assert await sched_a.tick(day + 5 * 3600) == []  # once a day
        assert len(await sched_b.tick(day + 86400 + 3 * 3600)) == 3  # the next day
    finally:
        await a.aclose()
        await b.aclose()
