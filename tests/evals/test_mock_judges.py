"""keel's model-graded scorers judged by the offline mock: every verdict is readable,
deterministic, and follows the answer (a mismatch fails), so evals with judges run offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from keel.evals.scorers import ScoreInput, build_scorer
from keel.evals.scorers.judges import read_claims, read_score, read_winner
from keel.gateway.providers import mock_judge
from keel.store import evals as q
from tests.evals.test_eval_cli import MOCK_CONFIG, keel, stored_runs
from tests.evals.test_runner import keel_state, runner, suite_of, write_jsonl

JUDGES = [
    {"type": "judge", "model": "mock", "rubric": "Polite, correct, and resolves the question"},
    {"type": "groundedness", "model": "mock", "threshold": 0.0},
    {"type": "relevance", "model": "mock"},
    {"type": "pairwise", "model": "mock", "criterion": "Which answer is more helpful"},
]


def case(cid: str, question: str, expected: str, context: str) -> dict[str, Any]:
    return {"id": cid, "messages": [{"role": "user", "content": question}],
            "expected": expected, "context": [context]}


async def test_every_keel_judge_gets_a_readable_verdict_that_follows_the_answer(
        tmp_path: Path, database_url: str) -> None:
    cases = [
        case("on-topic", "How do I reset my password?", "Reset the password in settings.",
             "Passwords are reset from the account settings page."),
        case("off-topic", "How do I reset my password?", "Quantum xylophones harmonise.",
             "Quantum xylophones harmonise."),
    ]
    suite = suite_of(tmp_path, cases, targets=[{"model": "mock"}], scorers=JUDGES,
                     concurrency=2, retries=0)
    async with keel_state(tmp_path, database_url) as state:
        [run] = await runner(state, suite, use_cache=False).run(suite)
        [again] = await runner(state, suite, use_cache=False).run(suite)
        rows = {r["case_id"]: r async for r in q.iter_results(state.store, run["id"])}
        rerun = {r["case_id"]: r async for r in q.iter_results(state.store, again["id"])}
    assert run["errored"] == 0, [r["error"] for r in rows.values()]
    scores = {cid: {s["name"]: s for s in orjson.loads(r["scores"])} for cid, r in rows.items()}
    assert all(s["error"] is None for by in scores.values() for s in by.values())
    on, off = scores["on-topic"], scores["off-topic"]
    assert on["judge"]["passed"] is True and off["judge"]["passed"] is False
    assert on["judge"]["explanation"].startswith("mock judge:")
    assert on["groundedness"]["value"] > off["groundedness"]["value"]
    assert on["relevance"]["passed"] is True  # the mock answers on the question's topic
    # against its reference: as good as one on the topic (a tie), better than one off it
    assert (on["pairwise"]["value"], off["pairwise"]["value"]) == (0.5, 1.0)
    assert {cid: r["scores"] for cid, r in rerun.items()} == \
        {cid: r["scores"] for cid, r in rows.items()}  # deterministic


def test_the_mock_recognises_each_judge_prompt_keel_sends() -> None:
    inp = ScoreInput(output_text="Open settings and choose reset password.", output=None,
                     expected="Reset your password in settings.",
                     context=["Passwords are reset in settings."],
                     messages=[{"role": "user", "content": "How do I reset my password?"}])
    scorers = {c["type"]: build_scorer(c, 0) for c in JUDGES}
    judge_prompt = scorers["judge"].prompt(inp)  # type: ignore[attr-defined]
    grounded_prompt = scorers["groundedness"].prompt(inp)  # type: ignore[attr-defined]
    relevance_prompt = scorers["relevance"].prompt(  # type: ignore[attr-defined]
        "How do I reset my password?", inp)
    pair_prompt = scorers["pairwise"].prompt(  # type: ignore[attr-defined]
        inp, inp.output_text, "Something else entirely.")

    def ask(prompt: str) -> str:
        reply = mock_judge.verdict([{"role": "system", "content": "You are a judge."},
                                    {"role": "user", "content": prompt}])
        assert reply is not None, prompt
        return reply

    assert read_score(ask(judge_prompt), 1, 5)[0] >= 4
    assert read_score(ask(relevance_prompt), 1, 5)[0] >= 4
    claims, supported, _, _ = read_claims(ask(grounded_prompt))
    assert claims == 1 and supported == 1
    assert read_winner(ask(pair_prompt))[0] == "A"
    swapped = scorers["pairwise"].prompt(  # type: ignore[attr-defined]
        inp, "Something else entirely.", inp.output_text)
    assert read_winner(ask(swapped))[0] == "B"  # the verdict follows the answer, not the order
    assert mock_judge.verdict([{"role": "user", "content": "How do I reset my password?"}]) \
        is None


@pytest.mark.parametrize(("low", "high"), [(1, 5), (0, 10), (0.0, 1.0)])
def test_judge_verdicts_stay_on_the_scale_asked_for(low: float, high: float) -> None:
    judge = build_scorer({"type": "judge", "model": "mock", "rubric": "Correct",
                          "scale": [low, high]}, 0)
    for answer in ("Reset the password in settings.", "Bananas."):
        inp = ScoreInput(output_text=answer, output=None, expected="Reset the password.")
        score, _ = read_score(mock_judge.verdict(
            [{"role": "user", "content": judge.prompt(inp)}]) or "", low, high)  # type: ignore[attr-defined]
        assert low <= score <= high


def test_the_readme_suite_runs_offline_with_readable_verdicts(
        env: dict[str, str], tmp_path: Path) -> None:
    """The README's suite and dataset, its judges pointed at the mock (and every case given
    context, which groundedness needs): every execution is judged, none errors."""
    (tmp_path / "support-reply.yaml").write_text(yaml.safe_dump({
        "name": "support-reply", "model": "mock", "params": {"max_tokens": 300},
        "messages": [{"role": "system", "content": "You are a support agent for {{product}}."},
                     {"role": "user", "content": "{{question}}"}]}))
    assert keel(env, "prompts", "push", str(tmp_path / "support-reply.yaml"), "--label",
                "candidate").exit_code == 0
    (tmp_path / "datasets").mkdir()
    write_jsonl(tmp_path / "datasets" / "support.jsonl", [
        {"id": "refund-1", "vars": {"product": "Acme", "question": "How do I get a refund?"},
         "expected": "refund", "context": ["Refunds are issued within 14 days of a return."]},
        {"id": "parcel-1", "vars": {"product": "Acme", "question": "Where is my parcel?"},
         "expected": "tracking", "context": ["Every parcel has a tracking link."]}])
    suite = tmp_path / "support.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "support-reply", "dataset": "datasets/support.jsonl",
        "targets": ["support-reply@candidate"],
        "scorers": [{"type": "contains", "value": "{{expected}}", "case_sensitive": False},
                    {"type": "length", "max_words": 150},
                    {"type": "judge", "model": "mock", "threshold": 0.7,
                     "rubric": "Polite, correct, and resolves the question"},
                    {"type": "groundedness", "model": "mock"}],
        "repeats": 3, "concurrency": 16, "retries": 2, "params": {"temperature": 0.2},
        "feature": "eval", "threshold": {"pass_rate": 0.9, "scorers": {"judge": 0.8},
                                         "max_error_rate": 0.1}}))
    result = keel(env, "eval", "run", str(suite), "-q")
    assert result.exit_code in (0, 1), result.output  # judged (2: could not be judged)
    [run] = stored_runs(env)
    assert (run["executions"], run["errored"]) == (6, 0)
    summary = orjson.loads(run["summary"])
    assert summary["thresholds"]["judgeable"] is True
    assert {name: s["errored"] for name, s in summary["scorers"].items()} == {
        "contains": 0, "length": 0, "judge": 0, "groundedness": 0}
    assert summary["scorers"]["judge"]["passed"] == 3  # the refund answers meet the reference


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    config = tmp_path / "keel.yaml"
    config.write_text(yaml.safe_dump(MOCK_CONFIG))
    return {"KEEL_DATA_DIR": str(tmp_path / "data"), "KEEL_DATABASE_URL": database_url,
            "KEEL_CONFIG": str(config), "KEEL_GIT_COMMIT": "0" * 40}


