"""Model-graded scorers (judge, groundedness, relevance, pairwise, similarity), run by the
real eval runner through an in-process gateway whose providers are fake OpenAI servers on
loopback: one answers as the model under test, the other as the judge / embedding model."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from keel.config import parse_config
from keel.evals.runner import Runner
from keel.evals.scorers import ScoreInput, ScorerConfigError, build_scorer
from keel.evals.scorers.judges import Unreadable, read_claims, read_score, read_winner
from keel.evals.suite import parse_suite
from keel.gateway.internal import LocalGateway
from keel.server.state import AppState
from keel.store import evals as q
from keel.store.traces import TraceFilter, list_traces
from tests.support.fake_openai import FakeOpenAI
from tests.support.keel import keel_settings
from tests.support.servers import ThreadServer, serve

QUESTION = "What is the capital of France?"
RUBRIC = "Answers the question correctly and politely"


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOpenAI, ThreadServer, FakeOpenAI, ThreadServer]]:
    answers, judge = FakeOpenAI(), FakeOpenAI()
    with serve(answers.app) as a_server, serve(judge.app) as j_server:
        yield answers, a_server, judge, j_server


def config(answers_url: str, judge_url: str) -> dict[str, Any]:
    return {
        "providers": [
            {"name": "answers", "kind": "openai", "base_url": answers_url + "/v1",
             "api_key": "sk-answers"},
            {"name": "judges", "kind": "openai", "base_url": judge_url + "/v1",
             "api_key": "sk-judges"}],
        "models": [
            {"name": "assistant", "provider": "answers", "upstream": "assistant-up",
             "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
            {"name": "grader", "provider": "judges", "upstream": "grader-up",
             "price": {"input_per_mtok": 10.0, "output_per_mtok": 30.0}},
            {"name": "embedder", "provider": "judges", "upstream": "embedder-up",
             "kind": "embedding", "price": {"input_per_mtok": 0.5}},
        ],
    }


@dataclass
class Env:
    state: AppState
    answers: FakeOpenAI
    judge: FakeOpenAI
    tmp: Path

    def answer_with(self, table: dict[str, str]) -> None:
        """The model under test answers each case by its last user message."""
        self.answers.responder = lambda body: table[body["messages"][-1]["content"]]

    def judge_with(self, fn: Callable[[dict[str, Any]], str]) -> None:
        self.judge.responder = fn

    async def run(self, scorers: list[dict[str, Any]], cases: list[dict[str, Any]],
                  ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """Run a suite over ``cases``; the run row and its results by case id."""
        (self.tmp / "cases.jsonl").write_text(
            "\n".join(orjson.dumps(c).decode() for c in cases) + "\n")
        suite = parse_suite({"dataset": "cases.jsonl", "targets": [{"model": "assistant"}],
                             "scorers": scorers, "concurrency": 2, "retries": 0},
                            self.tmp / "suite.yaml")
        runner = Runner(self.state.store, self.state.prompts, LocalGateway(self.state.flow))
        run = (await runner.run(suite))[0]
        results = {}
        async for row in q.iter_results(self.state.store, run["id"]):
            row["scores"] = orjson.loads(row["scores"])
            results[row["case_id"]] = row
        return run, results

    def judge_prompts(self) -> list[str]:
        return [r["body"]["messages"][-1]["content"] for r in self.judge.requests
                if r["path"].endswith("/chat/completions")]


@pytest.fixture
async def env(tmp_path: Path, fakes: tuple[FakeOpenAI, ThreadServer, FakeOpenAI, ThreadServer],
              ) -> AsyncIterator[Env]:
    answers, a_server, judge, j_server = fakes
    for fake in (answers, judge):
        fake.mode, fake.status, fake.requests = "ok", 500, []
        fake.responder, fake.vector_for = None, None
    state = AppState.build(keel_settings(tmp_path),
                           parse_config(config(a_server.url, j_server.url), "test.yaml"))
    await state.start()
    try:
        yield Env(state, answers, judge, tmp_path)
    finally:
        await state.aclose()


def section(prompt: str, name: str) -> str | None:
    """The text inside <name>...</name> of a judge prompt."""
    match = re.search(rf"<{name}>\n(.*?)\n</{name}>", prompt, re.DOTALL)
    return match[1] if match else None


def answer_in(body: dict[str, Any]) -> str:
    return section(body["messages"][-1]["content"], "answer") or ""


def case(cid: str, question: str = QUESTION, **extra: Any) -> dict[str, Any]:
    return {"id": cid, "messages": [{"role": "user", "content": question}], **extra}


def only_score(row: dict[str, Any]) -> dict[str, Any]:
    assert len(row["scores"]) == 1
    return dict(row["scores"][0])


# --- judge ------------------------------------------------------------------------------------

async def test_judge_passes_and_fails_on_a_normalised_scale(env: Env) -> None:
    env.answer_with({QUESTION: "Paris. Happy to help!", "What is 2+2?": "Go away."})
    env.judge_with(lambda body: (
        'Here is my verdict: {"reason": "Correct and polite.", "score": 5}'
        if "Paris" in answer_in(body) else
        '```json\n{"reason": "Rude and wrong.", "score": "2"}\n```'))
    run, results = await env.run(
        [{"type": "judge", "rubric": RUBRIC, "model": "grader"}],
        [case("good", expected="Paris", context=["Paris is the capital of France."]),
         case("bad", "What is 2+2?", expected="4")])

    good, bad = only_score(results["good"]), only_score(results["bad"])
    assert results["good"]["status"] == "passed"
    assert good["value"] == 1.0 and good["passed"] is True
    assert good["explanation"] == "Correct and polite."
    assert results["bad"]["status"] == "failed"
    assert bad["value"] == pytest.approx(0.25) and bad["passed"] is False  # 2 on 1..5
    assert bad["explanation"] == "Rude and wrong."
    assert (run["passed"], run["failed"], run["errored"]) == (1, 1, 0)

    # the judge is the configured model, at temperature 0, shown what include says
    bodies = {answer_in(r["body"]): r["body"] for r in env.judge.requests}
    body = bodies["Paris. Happy to help!"]
    assert body["model"] == "grader-up" and body["temperature"] == 0
    assert body["max_tokens"] == 512 and "response_format" not in body
    prompt = body["messages"][-1]["content"]
    assert section(prompt, "rubric") == RUBRIC
    assert section(prompt, "conversation") == f"[user] {QUESTION}"
    assert section(prompt, "context") == "[1] Paris is the capital of France."
    assert section(prompt, "reference_answer") == "Paris"
    assert '"score": <number from 1 to 5>' in prompt
    assert section(bodies["Go away."]["messages"][-1]["content"], "context") is None


async def test_judge_scale_include_json_mode_and_a_plain_text_verdict(env: Env) -> None:
    env.answer_with({QUESTION: "Paris."})
    env.judge_with(lambda body: "The answer is right but terse.\nScore: 7/10")
    _, results = await env.run(
        [{"type": "judge", "name": "terse", "rubric": "Correct; about {{topic}}",
          "model": "grader", "scale": [0, 10], "include": ["messages"], "json_mode": True,
          "temperature": 0.2, "max_tokens": 64}],
        [case("c1", expected="Paris", context=["doc"], vars={"topic": "geography"})])
    score = only_score(results["c1"])
    assert score["name"] == "terse" and score["value"] == pytest.approx(0.7)
    assert score["passed"] is True  # default threshold 0.7
    body = env.judge.requests[0]["body"]
    assert body["response_format"] == {"type": "json_object"}
    assert body["temperature"] == 0.2 and body["max_tokens"] == 64
    prompt = body["messages"][-1]["content"]
    assert section(prompt, "rubric") == "Correct; about geography"
    assert section(prompt, "conversation") is not None
    assert section(prompt, "context") is None and section(prompt, "reference_answer") is None
    assert "from 0 (does not meet" in prompt and "to 10 (fully meets it)" in prompt


async def test_judge_threshold_decides_pass(env: Env) -> None:
    env.answer_with({QUESTION: "Paris."})
    env.judge_with(lambda body: '{"reason": "ok", "score": 4}')
    _, results = await env.run(
        [{"type": "judge", "name": "strict", "rubric": RUBRIC, "model": "grader",
          "threshold": 0.9},
         {"type": "judge", "name": "lenient", "rubric": RUBRIC + ".", "model": "grader"}],
        [case("c1")])
    scores = {s["name"]: s for s in results["c1"]["scores"]}
    assert scores["strict"]["value"] == scores["lenient"]["value"] == pytest.approx(0.75)
    assert scores["strict"]["passed"] is False and scores["lenient"]["passed"] is True
    assert results["c1"]["status"] == "failed"


async def test_judge_calls_are_traced_costed_and_cached(env: Env) -> None:
    env.answer_with({QUESTION: "Paris.", "What is 2+2?": "4"})
    env.judge_with(lambda body: '{"reason": "fine", "score": 5}')
    scorers = [{"type": "judge", "rubric": RUBRIC, "model": "grader"}]
    cases = [case("c1"), case("c2", "What is 2+2?")]
    run, results = await env.run(scorers, cases)
    assert run["passed"] == 2 and len(env.judge.requests) == 2

    await env.state.writer.flush()
    traces, _ = await list_traces(env.state.store, TraceFilter(), limit=100)
    for t in traces:
        t["tags"] = orjson.loads(t["tags"]) if isinstance(t["tags"], str) else t["tags"] or {}
    judged = [t for t in traces if t["tags"].get("keel.purpose") == "eval-scorer"]
    answered = [t for t in traces if t not in judged]
    assert len(judged) == 2 and len(answered) == 2
    assert all(t["tags"]["keel.eval_run"] == run["id"] for t in traces)
    assert all(t["model_requested"] == "grader" and t["status"] == 200 for t in judged)
    judge_cost = sum(t["cost_usd"] for t in judged)
    answer_cost = sum(t["cost_usd"] for t in answered)
    assert judge_cost > 0 and answer_cost > 0
    # the run's cost is the answers' plus the judges'
    assert run["cost_usd"] == pytest.approx(answer_cost + judge_cost)
    summary = orjson.loads(run["summary"])
    assert summary["scoring_cost_usd"] == pytest.approx(judge_cost)
    assert {r["trace_id"] for r in results.values()} == {t["id"] for t in answered}

    # an unchanged re-run is answered from the result cache: no new calls, no cost
    again, again_results = await env.run(scorers, cases)
    assert len(env.judge.requests) == 2 and len(env.answers.requests) == 2
    assert again["cached"] == 2 and again["passed"] == 2
    assert again["cost_usd"] == 0
    assert [r["scores"] for r in again_results.values()] == \
        [r["scores"] for r in results.values()]


@pytest.mark.parametrize("reply", [
    "I think it is pretty good overall!",
    '{"reason": "great", "score": 9}',
    '{"reason": "great", "score": "high"}',
    "Score: 8/10 - nice",
])
async def test_unreadable_judge_output_errors_the_case(env: Env, reply: str) -> None:
    env.answer_with({QUESTION: "Paris."})
    env.judge_with(lambda body: reply)
    run, results = await env.run([{"type": "judge", "rubric": RUBRIC, "model": "grader"}],
                                 [case("c1")])
    row = results["c1"]
    assert row["status"] == "errored"
    assert reply in row["error"]  # the raw judge output is quoted
    score = only_score(row)
    assert score["passed"] is None and reply in score["error"]
    assert (run["passed"], run["failed"], run["errored"]) == (0, 0, 1)


async def test_unreadable_verdicts_name_the_judge_once_and_are_counted_together(
        env: Env) -> None:
    questions = [f"Question number {i}?" for i in range(4)]
    env.answer_with({q: f"Answer {i}." for i, q in enumerate(questions)})
    env.judge_with(lambda body: f"I liked {answer_in(body)} a lot")  # differs per case
    run, results = await env.run(
        [{"type": "judge", "rubric": RUBRIC, "model": "grader"},
         {"type": "groundedness", "model": "grader"}],
        [case(f"c{i}", q, context=["Some document."]) for i, q in enumerate(questions)])
    error = results["c0"]["error"]
    assert "judge: judge 'grader': unreadable verdict: no score in the reply; judge said: " \
        "I liked Answer 0. a lot" in error
    assert "groundedness judge 'grader': unreadable verdict" in error
    assert "judge judge" not in error
    summary = orjson.loads(run["summary"])
    kind = ("judge: judge 'grader': unreadable verdict: no score in the reply; groundedness: "
            "groundedness judge 'grader': unreadable verdict: no claim counts (\"claims\" and "
            "\"supported\") in the reply")
    assert summary["errors"] == [{"error": kind, "count": 4}]
    assert summary["error_note"] == f"all 4 executions failed; most common error (4\u00d7): {kind}"
    assert summary["thresholds"]["failures"] == [summary["error_note"]]


async def test_empty_judge_reply_errors_the_case(env: Env) -> None:
    env.answer_with({QUESTION: "Paris."})
    env.judge_with(lambda body: "")
    run, results = await env.run([{"type": "relevance", "model": "grader"}], [case("c1")])
    assert results["c1"]["status"] == "errored"
    assert "the judge returned no text" in results["c1"]["error"]
    assert run["errored"] == 1


async def test_judge_provider_error_errors_the_case_not_passes(env: Env) -> None:
    env.answer_with({QUESTION: "Paris."})
    env.judge.mode = "status"
    run, results = await env.run([{"type": "judge", "rubric": RUBRIC, "model": "grader"}],
                                 [case("c1")])
    row = results["c1"]
    assert row["status"] == "errored" and row["output"] == "Paris."
    assert "model 'grader' call failed" in row["error"]
    assert only_score(row)["passed"] is None
    assert (run["passed"], run["failed"], run["errored"]) == (0, 0, 1)
    assert len(env.judge.requests) == 1  # retries: 0


async def test_unknown_judge_model_errors_the_case(env: Env) -> None:
    env.answer_with({QUESTION: "Paris."})
    run, results = await env.run([{"type": "judge", "rubric": RUBRIC, "model": "no-such"}],
                                 [case("c1")])
    assert results["c1"]["status"] == "errored" and "no-such" in results["c1"]["error"]
    assert run["errored"] == 1 and env.judge.requests == []


# --- groundedness -----------------------------------------------------------------------------

async def test_groundedness_checks_claims_against_the_context(env: Env) -> None:
    grounded = "Paris is the capital of France."
    invented = "Paris is the capital of France. It has 40 million people."
    env.answer_with({"q1": grounded, "q2": invented, "q3": grounded})

    def judge(body: dict[str, Any]) -> str:
        if "40 million" in answer_in(body):
            return ('{"claims": 2, "supported": 1, "unsupported": ["It has 40 million '
                    'people."], "reason": "population not in context"}')
        return 'Result:\n```json\n{"claims": "1", "supported": "1", "unsupported": []}\n```'

    env.judge_with(judge)
    context = ["France's capital city is Paris."]
    run, results = await env.run(
        [{"type": "groundedness", "model": "grader"}],
        [case("grounded", "q1", context=context), case("invented", "q2", context=context),
         case("no-context", "q3")])

    ok, bad = only_score(results["grounded"]), only_score(results["invented"])
    assert ok["passed"] is True and ok["value"] == 1.0
    assert bad["passed"] is False and bad["value"] == 0.5
    assert "1 of 2 claims supported" in bad["explanation"]
    assert "40 million" in bad["explanation"]
    assert results["no-context"]["status"] == "errored"
    assert "no context" in results["no-context"]["error"]
    assert (run["passed"], run["failed"], run["errored"]) == (1, 1, 1)
    assert len(env.judge.requests) == 2  # nothing asked for the case without context
    prompt = env.judge_prompts()[0]
    assert section(prompt, "context") == "[1] France's capital city is Paris."
    assert section(prompt, "question") in ("q1", "q2")


async def test_faithfulness_is_groundedness_with_a_threshold(env: Env) -> None:
    env.answer_with({QUESTION: "Paris, population 2 million, on the Seine."})
    env.judge_with(lambda body: '{"claims": 3, "supported": 2, "reason": "one extra"}')
    _, results = await env.run(
        [{"type": "faithfulness", "model": "grader", "threshold": 0.6},
         {"type": "groundedness", "model": "grader"}],
        [case("c1", context=["Paris is on the Seine.", "Paris has 2 million people."])])
    scores = {s["name"]: s for s in results["c1"]["scores"]}
    assert scores["faithfulness"]["value"] == pytest.approx(2 / 3)
    assert scores["faithfulness"]["passed"] is True
    assert scores["groundedness"]["passed"] is False  # default threshold 1.0: every claim
    prompts = env.judge_prompts()  # the same question, asked by both
    assert len(prompts) == 2 and prompts[0] == prompts[1]
    assert "[2] Paris has 2 million people." in prompts[0]


# --- relevance --------------------------------------------------------------------------------

async def test_relevance_judges_the_last_user_message(env: Env) -> None:
    env.answer_with({"And its capital?": "Paris.", "What time is it?": "I like turtles."})
    env.judge_with(lambda body: '{"reason": "on point", "score": 5}'
                   if "Paris" in answer_in(body) else "Reason: off topic. Score: 1")
    history = [{"role": "system", "content": "Be brief."},
               {"role": "user", "content": "Tell me about France."},
               {"role": "assistant", "content": "France is in Europe."},
               {"role": "user", "content": "And its capital?"}]
    run, results = await env.run(
        [{"type": "relevance", "model": "grader"}],
        [{"id": "on", "messages": history},
         case("off", "What time is it?"),
         {"id": "no-question", "messages": [{"role": "system", "content": "What time is it?"}]}])
    on, off = only_score(results["on"]), only_score(results["off"])
    assert on["passed"] is True and on["value"] == 1.0 and on["explanation"] == "on point"
    assert off["passed"] is False and off["value"] == 0.0
    assert off["explanation"].startswith("off topic")
    assert results["no-question"]["status"] == "errored"
    assert "needs a user message" in results["no-question"]["error"]
    assert run["errored"] == 1
    questions = sorted(section(p, "question") or "" for p in env.judge_prompts())
    assert questions == ["And its capital?", "What time is it?"]


# --- pairwise ---------------------------------------------------------------------------------

async def test_pairwise_asks_twice_with_the_order_swapped(env: Env) -> None:
    env.answer_with({QUESTION: "Paris, the capital since 987."})
    reference = "Paris"

    def judge(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        side = "A" if "987" in (section(prompt, "answer_a") or "") else "B"
        return f'{{"reason": "more detail", "winner": "{side}"}}'

    env.judge_with(judge)
    run, results = await env.run(
        [{"type": "pairwise", "model": "grader", "criterion": "More informative"}],
        [case("c1", expected=reference)])
    score = only_score(results["c1"])
    assert score["value"] == 1.0 and score["passed"] is True
    assert "shown first: win; shown second: win" in score["explanation"]

    prompts = env.judge_prompts()
    assert len(prompts) == 2
    orders = {(section(p, "answer_a"), section(p, "answer_b")) for p in prompts}
    answer = "Paris, the capital since 987."
    assert orders == {(answer, reference), (reference, answer)}
    assert all(section(p, "criterion") == "More informative" for p in prompts)
    assert all(section(p, "conversation") == f"[user] {QUESTION}" for p in prompts)
    assert run["passed"] == 1


async def test_pairwise_loss_tie_and_position_bias(env: Env) -> None:
    env.answer_with({"q-loss": "dunno", "q-bias": "Paris.", "q-tie": "Paris!"})

    def judge(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        a, b = section(prompt, "answer_a"), section(prompt, "answer_b")
        if "dunno" in (a, b):  # the reference wins in both orders
            return '{"winner": "Answer ' + ("B" if a == "dunno" else "A") + '"}'
        if "Paris." in (a, b):  # always prefers whatever is shown first
            return '{"winner": "A", "reason": "first"}'
        return "Both say the same.\nWinner: tie"

    env.judge_with(judge)
    run, results = await env.run(
        [{"type": "pairwise", "model": "grader", "criterion": "Correct",
          "against": "expected"}],
        [case("loss", "q-loss", expected="Paris is the capital."),
         case("bias", "q-bias", expected="The capital is Paris."),
         case("tie", "q-tie", expected="Paris")])
    loss, bias, tie = (only_score(results[c]) for c in ("loss", "bias", "tie"))
    assert loss["value"] == 0.0 and loss["passed"] is False
    assert bias["value"] == 0.5 and bias["passed"] is True  # win + loss = as good
    assert "followed the position" in bias["explanation"]
    assert tie["value"] == 0.5 and tie["passed"] is True
    assert (run["passed"], run["failed"]) == (2, 1)
    assert len(env.judge.requests) == 6


async def test_pairwise_without_expected_is_an_error(env: Env) -> None:
    env.answer_with({QUESTION: "Paris."})
    _, results = await env.run(
        [{"type": "pairwise", "model": "grader", "criterion": "Correct"}], [case("c1")])
    assert results["c1"]["status"] == "errored"
    assert "expected answer" in results["c1"]["error"]
    assert env.judge.requests == []


# --- similarity -------------------------------------------------------------------------------

async def test_similarity_compares_embeddings_of_answer_and_expected(env: Env) -> None:
    env.answer_with({"q1": "Paris is the capital.", "q2": "Lyon, I think.", "q3": "Paris."})
    env.judge.vector_for = lambda text: [1.0, 0.0, 0.0] if "Paris" in text else [0.6, 0.8, 0.0]
    run, results = await env.run(
        [{"type": "similarity", "model": "embedder"}],
        [case("same", "q1", expected="The capital is Paris."),
         case("different", "q2", expected="Paris"),
         case("no-expected", "q3")])
    same, different = only_score(results["same"]), only_score(results["different"])
    assert same["value"] == pytest.approx(1.0) and same["passed"] is True
    assert different["value"] == pytest.approx(0.6) and different["passed"] is False
    assert "0.600" in different["explanation"]
    assert results["no-expected"]["status"] == "errored"
    assert "expected answer" in results["no-expected"]["error"]
    assert (run["passed"], run["failed"], run["errored"]) == (1, 1, 1)

    # one embedding call per case, with both texts, to the embedding model
    inputs = sorted(tuple(r["body"]["input"]) for r in env.judge.requests)
    assert [r["path"] for r in env.judge.requests] == ["/v1/embeddings"] * 2
    assert inputs == [("Lyon, I think.", "Paris"),
                      ("Paris is the capital.", "The capital is Paris.")]
    assert all(r["body"]["model"] == "embedder-up" for r in env.judge.requests)
    summary = orjson.loads(run["summary"])
    assert summary["scoring_cost_usd"] > 0


async def test_similarity_threshold_and_the_fake_default_vectors(env: Env) -> None:
    env.answer_with({QUESTION: "Paris."})
    _, results = await env.run(
        [{"type": "similarity", "model": "embedder", "threshold": 0.99}],
        [case("c1", expected="Lyon")])
    score = only_score(results["c1"])  # the fake embeds every text the same
    assert score["value"] == pytest.approx(1.0) and score["passed"] is True


async def test_similarity_embedding_error_errors_the_case(env: Env) -> None:
    env.answer_with({QUESTION: "Paris."})
    env.judge.mode = "status"
    run, results = await env.run([{"type": "similarity", "model": "embedder"}],
                                 [case("c1", expected="Paris")])
    assert results["c1"]["status"] == "errored"
    assert "model 'embedder' call failed" in results["c1"]["error"]
    assert run["passed"] == 0 and run["errored"] == 1


# --- outside the runner, config errors, parsing ----------------------------------------------

@pytest.mark.parametrize("config", [
    {"type": "judge", "rubric": RUBRIC, "model": "grader"},
    {"type": "groundedness", "model": "grader"},
    {"type": "relevance", "model": "grader"},
    {"type": "pairwise", "model": "grader", "criterion": "Correct"},
    {"type": "similarity", "model": "embedder"},
])
async def test_model_graded_scorers_need_the_runner(config: dict[str, Any]) -> None:
    score = await build_scorer(config).score(
        ScoreInput(output_text="Paris", output=None, expected="Paris", context=["Paris"],
                   messages=[{"role": "user", "content": QUESTION}]))
    assert score.passed is None and score.error is not None
    assert "model-graded" in score.error and "eval runner" in score.error


@pytest.mark.parametrize(("config", "key", "fragment"), [
    ({"type": "judge", "model": "grader"}, "rubric", "e.g. rubric:"),
    ({"type": "judge", "rubric": RUBRIC}, "model", "e.g. model:"),
    ({"type": "judge", "rubric": RUBRIC, "model": ""}, "model", "e.g. model:"),
    ({"type": "judge", "rubric": "  ", "model": "grader"}, "rubric", "e.g. rubric:"),
    ({"type": "judge", "rubric": RUBRIC, "model": "grader", "scale": [5, 1]}, "scale",
     "e.g. scale: [1, 5]"),
    ({"type": "judge", "rubric": RUBRIC, "model": "grader", "scale": [1]}, "scale",
     "e.g. scale: [1, 5]"),
    ({"type": "judge", "rubric": RUBRIC, "model": "grader", "scale": "1-5"}, "scale",
     "e.g. scale: [1, 5]"),
    ({"type": "judge", "rubric": RUBRIC, "model": "grader", "include": ["answer"]},
     "include", "e.g. include: [input, context]"),
    ({"type": "judge", "rubrik": RUBRIC, "model": "grader"}, "rubrik", "allowed: "),
    ({"type": "judge", "rubric": RUBRIC, "model": "grader", "threshold": 2}, "threshold",
     "between 0 and 1"),
    ({"type": "judge", "rubric": RUBRIC, "model": "grader", "max_tokens": 0}, "max_tokens",
     "e.g. max_tokens: 512"),
    ({"type": "judge", "rubric": RUBRIC, "model": "grader", "temperature": 3},
     "temperature", "between 0 and 2"),
    ({"type": "judge", "rubric": RUBRIC, "model": "grader", "json_mode": "yes"},
     "json_mode", "true or false"),
    ({"type": "groundedness"}, "model", "e.g. model:"),
    ({"type": "relevance", "model": "grader", "rubric": "x"}, "rubric", "allowed: "),
    ({"type": "pairwise", "model": "grader"}, "criterion", "e.g. criterion:"),
    ({"type": "pairwise", "model": "grader", "criterion": "x", "against": "baseline"},
     "against", "against: expected"),
    ({"type": "similarity"}, "model", "e.g. model: text-embedding-3-small"),
    ({"type": "similarity", "model": "embedder", "temperature": 0}, "temperature",
     "allowed: "),
])
def test_config_errors_name_the_key_and_show_an_example(config: dict[str, Any], key: str,
                                                        fragment: str) -> None:
    with pytest.raises(ScorerConfigError) as err:
        build_scorer(config, where="suite.yaml: scorers[0]")
    assert err.value.key == key
    assert str(err.value).startswith(f"suite.yaml: scorers[0].{key}: ")
    assert fragment in str(err.value)


def test_suite_reports_a_bad_judge_entry() -> None:
    from keel.evals.suite import SuiteError

    with pytest.raises(SuiteError, match=r"scorers\[1\]\.rubric: required"):
        parse_suite({"dataset": "d.jsonl", "targets": [{"model": "m"}],
                     "scorers": [{"type": "contains", "value": "x"},
                                 {"type": "judge", "model": "grader"}]}, None)


@pytest.mark.parametrize(("raw", "score", "reason"), [
    ('{"score": 4, "reason": "good"}', 4.0, "good"),
    ('{"Reason": "good", "Score": "4"}', 4.0, "good"),
    ('Sure! ```json\n{"reason": "fine", "score": 3.5}\n``` Hope that helps.', 3.5, "fine"),
    ('My verdict is {"reason": "meh", "score": "2/5"} as requested.', 2.0, "meh"),
    ("Score: 4/5\nReason: clear and correct", 4.0, "clear and correct"),
    ("**Score:** 5", 5.0, ""),
    ("The score is 1 out of 5.", 1.0, ""),
    ('{"reason": "nested {braces}", "score": 2}', 2.0, "nested {braces}"),
])
def test_read_score_accepts_lenient_forms(raw: str, score: float, reason: str) -> None:
    assert read_score(raw, 1, 5) == (score, reason)


@pytest.mark.parametrize(("raw", "why"), [
    ("Looks good to me.", "no score"),
    ('{"score": 6}', "outside the scale"),
    ('{"score": 0}', "outside the scale"),
    ('{"score": true}', "not a number"),
    ('{"score": NaN}', "not a number"),
    ("Score: 8/10", "the scale is 1 to 5"),
    ('{"reason": "no number here"}', "no score"),
])
def test_read_score_rejects_what_it_cannot_trust(raw: str, why: str) -> None:
    with pytest.raises(Unreadable, match=why):
        read_score(raw, 1, 5)


@pytest.mark.parametrize(("raw", "side"), [
    ('{"winner": "A"}', "A"), ('{"winner": "answer b"}', "B"), ('{"Winner": "Tie"}', "tie"),
    ("After comparing: Winner: B", "B"), ("**Verdict:** tie", "tie"),
])
def test_read_winner(raw: str, side: str) -> None:
    assert read_winner(raw)[0] == side


@pytest.mark.parametrize("raw", ['{"winner": "C"}', "Both are fine.", '{"winner": 1}'])
def test_read_winner_rejects(raw: str) -> None:
    with pytest.raises(Unreadable):
        read_winner(raw)


def test_read_claims_forms() -> None:
    assert read_claims('{"claims": 3, "supported": 2}')[:2] == (3, 2)
    listed = read_claims('{"claims": [{"claim": "x", "supported": true}, '
                         '{"claim": "y", "supported": false}]}')
    assert listed[:3] == (2, 1, ["y"])
    assert read_claims("2 of 3 claims are supported.")[:2] == (3, 2)
    assert read_claims("Supported: 1/4")[:2] == (4, 1)
    for bad in ('{"claims": 2, "supported": 3}', '{"claims": 2}', "All good!",
                '{"claims": 1.5, "supported": 1}'):
        with pytest.raises(Unreadable):
            read_claims(bad)


@pytest.mark.parametrize("raw", [
    '{"reason": "it would deserve a score of 5, but the score is 2 points lower because',
    "I would not give this a score: 4 is too high for an answer like this one.",
])
def test_read_score_never_guesses_from_prose_or_a_cut_json_reply(raw: str) -> None:
    with pytest.raises(Unreadable):
        read_score(raw, 1, 5)
