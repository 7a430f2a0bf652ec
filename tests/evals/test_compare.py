"""Comparing eval runs and the regression gate: Wilson intervals, the exact sign test,
flips, dataset version mismatches, verdicts, and the gate's behaviour on noise."""

from __future__ import annotations

import math
import random
import re
import time
from fractions import Fraction
from typing import Any

import orjson
import pytest

from keel.evals import compare, stats
from keel.evals.compare import GATE_RULE, compare_runs, gate_verdict
from keel.evals.runner import Tally, check_thresholds
from keel.evals.scorers import Score
from keel.evals.stats import sign_test_p, wilson
from keel.evals.suite import GateSpec, Suite, parse_suite
from keel.store import Store
from keel.store import evals as q
from keel.types import new_trace_id

# --- building realistic runs --------------------------------------------------------------

SCORERS = [{"type": "contains", "value": "{{expected}}", "name": "mentions-answer"},
           {"type": "length", "max_words": 80, "name": "concise"}]

PASS, FAIL, ERROR, LONG = "pass", "fail", "error", "long"


def make_suite(repeats: int = 1, threshold: dict[str, Any] | None = None) -> Suite:
    return parse_suite({"name": "support-reply", "dataset": "support",
                        "targets": ["support-reply@production"], "scorers": SCORERS,
                        "repeats": repeats, "threshold": threshold or {}}, None)


def _scores(outcome: str) -> list[tuple[str, Score]]:
    mentions = Score(1.0, True, 'answer contains "refund"') if outcome != FAIL else \
        Score(0.0, False, 'answer does not contain "refund"')
    concise = Score(1.0, True, "12 words is within max_words 80") if outcome != LONG else \
        Score(0.0, False, "131 words is above max_words 80")
    return [("mentions-answer", mentions), ("concise", concise)]


async def make_run(store: Store, outcomes: list[list[str]], *, target: str = "support-reply@3",
                   dataset_version: int = 1, case_ids: list[str] | None = None,
                   suite: Suite | None = None, status: str = "done",
                   outputs: dict[int, str] | None = None, role: str | None = None,
                   cost: float = 0.002, latency: float = 400.0) -> dict[str, Any]:
    """Store a run as the runner would: the run row, a result row per execution (scores
    as the runner serialises them) and the finished row with the runner's own summary and
    threshold verdict. ``outcomes[i]`` lists case i's executions (one per repeat)."""
    suite = suite or make_suite(repeats=max(len(o) for o in outcomes))
    repeats = suite.spec.repeats
    run_id = new_trace_id()
    now = time.time()
    await q.create_run(store, {
        "id": run_id, "suite": suite.name, "group_id": new_trace_id(), "role": role,
        "target": target, "prompt_name": "support-reply", "prompt_version": 3,
        "model": "mock-1", "dataset_name": "support", "dataset_version": dataset_version,
        "config": orjson.dumps(suite.config_record()).decode(), "git_commit": "a1b2c3d4e5f6",
        "status": "running", "started_at": now, "cases": len(outcomes)})
    tally = Tally()
    rows: list[dict[str, Any]] = []
    for idx, executions in enumerate(outcomes):
        case_id = case_ids[idx] if case_ids else f"case-{idx:04d}"
        for rep, outcome in enumerate(executions):
            row: dict[str, Any] = {
                "run_id": run_id, "case_idx": idx, "repeat": rep, "case_id": case_id,
                "status": "errored", "output": None, "scores": "[]", "error": None,
                "latency_ms": latency + (idx * 7 + rep * 13) % 300, "cost_usd": cost,
                "input_tokens": 120, "output_tokens": 40, "cached": rep == 0 and idx % 5 == 0,
                "trace_id": None}
            scores: list[tuple[str, Score]] = []
            if outcome == ERROR:
                row.update(error="upstream: 503 Service Unavailable", cost_usd=0.0,
                           input_tokens=0, output_tokens=0)
            else:
                scores = _scores(outcome)
                text = (outputs or {}).get(idx, f"Your refund for order {idx} is on its way.")
                if outcome == FAIL:
                    text = (outputs or {}).get(idx, "I cannot help with that.")
                row["output"] = text
                row["scores"] = orjson.dumps([
                    {"name": n, "value": s.value, "passed": s.passed,
                     "explanation": s.explanation, "error": s.error} for n, s in scores]).decode()
                row["status"] = "passed" if all(s.passed for _, s in scores) else "failed"
            tally.add(row, scores, repeats, 0.0)
            rows.append(row)
    for i in range(0, len(rows), 500):
        await q.add_results(store, rows[i:i + 500])
    if status != "done":
        await q.finish_run(store, run_id, {"status": status, "finished_at": time.time(),
                                           "error": "RuntimeError: provider went away"})
    else:
        pct = await q.latency_percentiles(store, run_id, (0.5, 0.95, 0.99))
        summary = tally.summary()
        values: dict[str, Any] = {
            "status": "done", "finished_at": now + 12.5, "executions": tally.executions,
            "passed": tally.passed, "failed": tally.failed, "errored": tally.errored,
            "cached": tally.cached, "cost_usd": tally.cost_usd,
            "input_tokens": tally.input_tokens, "output_tokens": tally.output_tokens,
            "latency_p50_ms": pct[0.5], "latency_p95_ms": pct[0.95],
            "latency_p99_ms": pct[0.99]}
        summary["thresholds"] = check_thresholds(suite, {**values, "summary": summary})
        values["summary"] = orjson.dumps(summary).decode()
        await q.finish_run(store, run_id, values)
    run = await q.get_run(store, run_id)
    assert run is not None
    return run


def thresholds_of(run: dict[str, Any]) -> dict[str, Any]:
    return dict(orjson.loads(run["summary"] or "{}").get("thresholds") or {})


def flips_scenario() -> tuple[list[list[str]], list[list[str]]]:
    """80 cases: 55 pass -> fail, 4 fail -> pass, 3 fail on both, 2 error on the candidate
    (pass on the baseline), the rest pass on both."""
    a: list[list[str]] = []
    b: list[list[str]] = []
    for i in range(80):
        if i < 55:
            a.append([PASS])
            b.append([FAIL])
        elif i < 59:
            a.append([FAIL])
            b.append([PASS])
        elif i < 62:
            a.append([LONG])
            b.append([LONG])
        elif i < 64:
            a.append([PASS])
            b.append([ERROR])
        else:
            a.append([PASS])
            b.append([PASS])
    return a, b


# --- statistics ---------------------------------------------------------------------------

def test_wilson_interval_matches_known_values() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert wilson(1, 10) == pytest.approx((0.0179, 0.4042), abs=1e-4)
    # a wider z (99%) widens the interval
    lo99, hi99 = wilson(50, 100, z=2.5758)
    assert lo99 < 0.4038 and hi99 > 0.5962


def _exact_tail(worse: int, better: int) -> Fraction:
    n = worse + better
    return Fraction(sum(math.comb(n, k) for k in range(worse, n + 1)), 2 ** n)


def test_sign_test_p_values_are_exact_binomial_tails() -> None:
    assert sign_test_p(9, 1) == pytest.approx(11 / 1024, rel=1e-12)
    assert sign_test_p(10, 0) == pytest.approx(1 / 1024, rel=1e-12)
    assert sign_test_p(5, 5) == pytest.approx(638 / 1024, rel=1e-12)
    assert sign_test_p(8, 2) == pytest.approx(56 / 1024, rel=1e-12)
    assert sign_test_p(1, 0) == 0.5
    assert sign_test_p(0, 10) == 1.0 and sign_test_p(0, 0) == 1.0
    # the log-space path (many untied cases) agrees with exact arithmetic
    for worse, better in ((1100, 1000), (1050, 1051), (1300, 1200), (2500, 2400)):
        assert worse + better > stats.EXACT_LIMIT
        assert sign_test_p(worse, better) == pytest.approx(float(_exact_tail(worse, better)),
                                                           rel=1e-9)


def test_sign_test_never_fires_more_often_than_alpha_under_no_change() -> None:
    """Under a no-op every untied case is worse or better with probability 1/2: the chance
    of p < alpha is at most alpha for every number of untied cases."""
    for alpha in (0.01, 0.05, 0.1):
        for n in range(1, 150):
            size = sum(Fraction(math.comb(n, w), 2 ** n) for w in range(n + 1)
                       if sign_test_p(w, n - w) < alpha)
            assert size <= alpha, (alpha, n, float(size))


def test_the_gate_rule_is_stated_in_the_module_docstring() -> None:
    doc = " ".join((compare.__doc__ or "").replace("``", "").split())
    assert GATE_RULE in doc


# --- comparing stored runs ----------------------------------------------------------------

async def test_flips_are_counted_listed_and_tested(store: Store) -> None:
    a_out, b_out = flips_scenario()
    run_a = await make_run(store, a_out, target="support-reply@2", role="baseline")
    run_b = await make_run(store, b_out, target="support-reply@3", role="candidate",
                           cost=0.003, latency=600.0)
    cmp = await compare_runs(store, run_a["id"], run_b["id"])

    # the 2 cases that errored on the candidate are left out of the paired comparison
    assert cmp.matched_by == "case_idx"
    assert cmp.warnings == ["2 case(s) with an errored execution on either side are left out "
                            "of the paired comparison (see the errored counts)"]
    assert (cmp.cases_compared, cmp.only_in_a, cmp.only_in_b) == (78, 0, 0)
    assert (cmp.worse, cmp.better, cmp.ties) == (55, 4, 19)
    assert cmp.p_worse == pytest.approx(float(_exact_tail(55, 4)))
    assert cmp.p_better == pytest.approx(float(_exact_tail(4, 55)))
    assert cmp.pass_to_fail.count == 55 and cmp.fail_to_pass.count == 4
    assert len(cmp.pass_to_fail.examples) == compare.MAX_EXAMPLES  # listed up to the cap
    first = cmp.pass_to_fail.examples[0]
    assert (first.case_id, first.a_rate, first.b_rate) == ("case-0000", 1.0, 0.0)
    assert first.b_failures == ['mentions-answer: answer does not contain "refund"']
    assert first.b_output == "I cannot help with that."
    back = cmp.fail_to_pass.examples
    assert [f.case_id for f in back] == ["case-0055", "case-0056", "case-0057", "case-0058"]
    assert back[0].a_failures == ['mentions-answer: answer does not contain "refund"']

    # overall and per-scorer pass rates with their Wilson intervals
    assert cmp.a.pass_rate.rate == pytest.approx(73 / 80)
    assert (cmp.a.pass_rate.lo, cmp.a.pass_rate.hi) == pytest.approx(wilson(73, 80))
    assert cmp.b.pass_rate.rate == pytest.approx(20 / 80)
    assert cmp.a_pass_rate == pytest.approx(71 / 78) and cmp.b_pass_rate == pytest.approx(20 / 78)
    assert cmp.effect == pytest.approx(-51 / 78)
    mentions = cmp.b.scorers["mentions-answer"]
    assert (mentions.passed, mentions.failed, mentions.errored) == (23, 55, 0)
    assert (mentions.pass_rate.lo, mentions.pass_rate.hi) == pytest.approx(wilson(23, 78))
    assert cmp.b.scorers["concise"].pass_rate.rate == pytest.approx(75 / 78)
    assert cmp.a.scorers["concise"].pass_rate.rate == pytest.approx(77 / 80)

    # errors, cost (uncached cost counts cached answers), tokens, latency
    assert (cmp.a.errored, cmp.b.errored, cmp.b.errored_cases) == (0, 2, 2)
    assert cmp.a.full_cost_usd == pytest.approx(80 * 0.002)
    assert cmp.b.full_cost_usd == pytest.approx(78 * 0.003)
    assert cmp.b.cost_usd < cmp.b.full_cost_usd  # some answers came from the cache
    assert cmp.deltas["full_cost_usd"].delta == pytest.approx(78 * 0.003 - 80 * 0.002)
    assert cmp.deltas["input_tokens"].delta == -2 * 120
    assert cmp.deltas["latency_p50_ms"].delta == pytest.approx(
        run_b["latency_p50_ms"] - run_a["latency_p50_ms"])
    assert cmp.deltas["latency_p95_ms"].b == run_b["latency_p95_ms"]
    assert cmp.deltas["errored"].delta == 2

    d = orjson.loads(orjson.dumps(cmp.to_dict()))
    assert d["pass_to_fail"]["count"] == 55 and len(d["pass_to_fail"]["examples"]) == 50
    assert d["cases_compared"] == 78 and d["worse"] == 55
    assert d["a"]["dataset"] == "support@1" and d["b"]["pass_rate"]["n"] == 80
    assert d["deltas"]["full_cost_usd"]["a"] == pytest.approx(0.16)


async def test_repeats_give_per_case_rates_majority_flips_and_flakiness(store: Store) -> None:
    a = [[PASS, PASS, PASS], [PASS, PASS, FAIL], [FAIL, FAIL, FAIL], [PASS, PASS, PASS],
         [PASS, ERROR, PASS]]
    b = [[PASS, FAIL, PASS], [FAIL, FAIL, PASS], [FAIL, PASS, PASS], [PASS, PASS, PASS],
         [ERROR, ERROR, PASS]]
    run_a = await make_run(store, a)
    run_b = await make_run(store, b)
    cmp = await compare_runs(store, run_a["id"], run_b["id"])
    # case 0: 1 -> 2/3 worse, still passing; case 1: 2/3 -> 1/3 a flip; case 2: 0 -> 2/3 a
    # flip back; case 3 tie; case 4 has errored repeats (on both sides): left out
    assert cmp.cases_compared == 4
    assert cmp.warnings == ["1 case(s) with an errored execution on either side are left out "
                            "of the paired comparison (see the errored counts)"]
    assert (cmp.worse, cmp.better, cmp.ties) == (2, 1, 1)
    assert [f.case_id for f in cmp.pass_to_fail.examples] == ["case-0001"]
    assert [f.case_id for f in cmp.fail_to_pass.examples] == ["case-0002"]
    flip = cmp.pass_to_fail.examples[0]
    assert flip.a_rate == pytest.approx(2 / 3) and flip.b_rate == pytest.approx(1 / 3)
    assert cmp.a.flaky_cases == 2 and cmp.b.flaky_cases == 4
    assert cmp.a.flaky_cases == orjson.loads(run_a["summary"])["flaky_cases"]
    assert cmp.b.errored_cases == 1 and cmp.b.errored == 2
    assert cmp.a.errored_cases == 1 and cmp.a.errored == 1
    # per-side rates still count every execution, the errored case's included
    assert cmp.a.pass_rate.rate == pytest.approx(10 / 15)
    assert cmp.b.pass_rate.rate == pytest.approx(9 / 15)
    assert cmp.a.repeats == cmp.b.repeats == 3
    assert cmp.a_pass_rate == pytest.approx((1 + 2 / 3 + 0 + 1) / 4)
    assert cmp.b_pass_rate == pytest.approx((2 / 3 + 1 / 3 + 2 / 3 + 1) / 4)
    assert cmp.effect == pytest.approx(0.0, abs=1e-12)


async def test_different_dataset_versions_match_cases_by_id(store: Store) -> None:
    run_a = await make_run(store, [[PASS], [PASS], [FAIL], [PASS], [PASS]],
                           case_ids=["refund", "shipping", "warranty", "greeting", "dup"],
                           dataset_version=1)
    # version 2 reorders the cases, drops "greeting" and adds "invoice"
    run_b = await make_run(store, [[PASS], [FAIL], [PASS], [FAIL], [PASS]],
                           case_ids=["invoice", "refund", "warranty", "shipping", "dup"],
                           dataset_version=2)
    cmp = await compare_runs(store, run_a["id"], run_b["id"])
    assert cmp.matched_by == "case_id"
    assert any("different datasets" in w and "support@1" in w and "support@2" in w
               for w in cmp.warnings)
    assert (cmp.cases_compared, cmp.only_in_a, cmp.only_in_b) == (4, 1, 1)
    assert sorted(f.case_id for f in cmp.pass_to_fail.examples) == ["refund", "shipping"]
    assert [f.case_id for f in cmp.fail_to_pass.examples] == ["warranty"]
    assert cmp.pass_to_fail.examples[0].b_failures  # the candidate's explanations are kept
    assert (cmp.worse, cmp.better, cmp.ties) == (2, 1, 1)
    assert any("not in the candidate" in w for w in cmp.warnings)
    assert cmp.a.cases == 5 and cmp.b.cases == 5

    # the same versions match by position, with no warning
    same = await compare_runs(store, run_a["id"], run_a["id"])
    assert same.matched_by == "case_idx" and same.warnings == []
    assert (same.worse, same.better, same.ties) == (0, 0, 5)


async def test_unknown_run_is_reported(store: Store) -> None:
    from keel.errors import NotFound

    run = await make_run(store, [[PASS]])
    with pytest.raises(NotFound, match="no eval run 'nope'"):
        await compare_runs(store, run["id"], "nope")


# --- the verdict --------------------------------------------------------------------------

GATE = GateSpec(alpha=0.05, min_effect=0.02)


def noisy_outcomes(rng: random.Random, n: int = 200, flaky_share: float = 0.10,
                   fail_share: float = 0.08) -> list[float]:
    """A dataset's per-case pass probabilities: mostly stable, ``flaky_share`` at 50/50."""
    kinds = []
    for i in range(n):
        if i < n * flaky_share:
            kinds.append(0.5)
        elif i < n * (flaky_share + fail_share):
            kinds.append(0.0)
        else:
            kinds.append(1.0)
    rng.shuffle(kinds)
    return kinds


def sample(rng: random.Random, probs: list[float], repeats: int = 1) -> list[list[str]]:
    return [[PASS if rng.random() < p else FAIL for _ in range(repeats)] for p in probs]


async def test_planted_regression_fires(store: Store) -> None:
    a_out, b_out = flips_scenario()
    run_a = await make_run(store, a_out)
    run_b = await make_run(store, b_out)
    cmp = await compare_runs(store, run_a["id"], run_b["id"])
    v = gate_verdict(cmp, GATE, thresholds_of(run_b))
    assert v.code == 1 and v.regression
    # 71 of 78 compared cases pass on the baseline, 20 on the candidate (the 2 errored
    # cases are left out): -51/78 of a point, 55 worse and 4 better
    assert v.reasons[0].startswith("regression: pass rate 91.0% -> 25.6% (-65.4 points)")
    assert "55 case(s) worse, 4 better, 19 unchanged; sign test p = 8.49e-13 < alpha 0.05" \
        in v.reasons[0]
    assert v.to_dict() == {"code": 1, "result": "failed", "regression": True,
                           "reasons": v.reasons}


async def test_a_drop_made_only_of_errored_executions_is_not_a_regression(
        store: Store) -> None:
    """Errored executions are an outage, not a quality change: 20 of 100 candidate cases
    errored (each passed on the baseline) and one baseline case errored. Counted as not
    passed, that would be 20 cases worse (p = 2^-20, a 20-point drop) and fire; left out,
    the 79 remaining cases are all unchanged."""
    a_out = [[ERROR]] + [[PASS]] * 94 + [[FAIL]] * 5
    b_out = [[FAIL]] + [[ERROR]] * 20 + [[PASS]] * 74 + [[FAIL]] * 5
    tolerant = make_suite(threshold={"max_error_rate": 0.25})
    run_a = await make_run(store, a_out, suite=tolerant)
    run_b = await make_run(store, b_out, suite=tolerant)
    cmp = await compare_runs(store, run_a["id"], run_b["id"])
    assert cmp.warnings == ["21 case(s) with an errored execution on either side are left "
                            "out of the paired comparison (see the errored counts)"]
    assert (cmp.cases_compared, cmp.worse, cmp.better, cmp.ties) == (79, 0, 0, 79)
    assert cmp.a_pass_rate == pytest.approx(74 / 79) and cmp.b_pass_rate == pytest.approx(74 / 79)
    assert cmp.effect == pytest.approx(0.0, abs=1e-12) and cmp.p_worse == 1.0
    assert cmp.pass_to_fail.count == 0 and cmp.fail_to_pass.count == 0
    # the per-side numbers still show the errors
    assert cmp.a.pass_rate.rate == pytest.approx(94 / 100)
    assert cmp.b.pass_rate.rate == pytest.approx(74 / 100)
    assert (cmp.a.errored, cmp.b.errored, cmp.b.errored_cases) == (1, 20, 20)
    assert cmp.deltas["errored"].delta == 19
    v = gate_verdict(cmp, GATE, thresholds_of(run_b))
    assert (v.code, v.regression) == (0, False)
    assert v.reasons == ["no regression: pass rate 93.7% -> 93.7% (+0.0 points); 0 case(s) "
                         "worse, 0 better, 79 unchanged; sign test p = 1"]

    # under the default max_error_rate (10%) the same candidate cannot be judged: exit 2
    run_c = await make_run(store, a_out)
    run_d = await make_run(store, b_out)
    cmp = await compare_runs(store, run_c["id"], run_d["id"])
    assert (cmp.cases_compared, cmp.worse, cmp.better) == (79, 0, 0)
    v = gate_verdict(cmp, GATE, thresholds_of(run_d))
    assert (v.code, v.regression) == (2, False)
    assert v.reasons == ["the candidate run cannot be judged: 20 of 100 executions errored "
                         "(20% > max_error_rate 10%); most common error (20\u00d7): upstream: "
                         "503 Service Unavailable"]


async def test_identical_runs_pass(store: Store) -> None:
    outcomes = [[PASS]] * 40 + [[FAIL]] * 5
    run_a = await make_run(store, outcomes)
    run_b = await make_run(store, outcomes)
    cmp = await compare_runs(store, run_a["id"], run_b["id"])
    v = gate_verdict(cmp, GATE, thresholds_of(run_b))
    assert (v.code, v.regression) == (0, False)
    assert v.reasons == ["no regression: pass rate 88.9% -> 88.9% (+0.0 points); 0 case(s) "
                         "worse, 0 better, 45 unchanged; sign test p = 1"]


async def test_small_or_insignificant_drops_do_not_fire(store: Store) -> None:
    # 3 of 100 cases worse: more than min_effect but p = 1/8
    base = [[PASS]] * 100
    run_a = await make_run(store, base)
    run_b = await make_run(store, [[FAIL]] * 3 + [[PASS]] * 97)
    v = gate_verdict(await compare_runs(store, run_a["id"], run_b["id"]), GATE,
                     thresholds_of(run_b))
    assert v.code == 0 and "not significant" in v.reasons[-1]
    # significant but within min_effect: 8 of 1000 worse (p = 1/256)
    run_c = await make_run(store, [[PASS]] * 1000)
    run_d = await make_run(store, [[FAIL]] * 8 + [[PASS]] * 992)
    v = gate_verdict(await compare_runs(store, run_c["id"], run_d["id"]), GATE,
                     thresholds_of(run_d))
    assert v.code == 0 and "within min_effect" in v.reasons[-1]
    loose = GateSpec(alpha=0.05, min_effect=0.005)
    v = gate_verdict(await compare_runs(store, run_c["id"], run_d["id"]), loose,
                     thresholds_of(run_d))
    assert v.code == 1 and v.regression


async def test_broken_threshold_fails_without_regression(store: Store) -> None:
    suite = make_suite(threshold={"pass_rate": 0.95, "scorers": {"concise": 0.99}})
    outcomes = [[PASS]] * 45 + [[FAIL]] * 4 + [[LONG]]
    run_a = await make_run(store, outcomes, suite=suite)
    run_b = await make_run(store, outcomes, suite=suite)
    cmp = await compare_runs(store, run_a["id"], run_b["id"])
    v = gate_verdict(cmp, GATE, thresholds_of(run_b))
    assert (v.code, v.regression) == (1, False)
    assert "threshold: pass rate 90.0% < threshold 95.0%" in v.reasons
    assert "threshold: scorer 'concise' pass rate 98.0% < threshold 99.0%" in v.reasons
    assert v.reasons[-1].startswith("no regression")


async def test_unjudgeable_or_unfinished_runs_exit_2(store: Store) -> None:
    good = await make_run(store, [[PASS]] * 20)
    erroring = await make_run(store, [[PASS]] * 14 + [[ERROR]] * 6)  # 30% > 10% errored
    cmp = await compare_runs(store, good["id"], erroring["id"])
    v = gate_verdict(cmp, GATE, thresholds_of(erroring))
    assert (v.code, v.regression) == (2, False)
    assert v.reasons == ["the candidate run cannot be judged: 6 of 20 executions errored "
                         "(30% > max_error_rate 10%); most common error (6\u00d7): upstream: "
                         "503 Service Unavailable"]
    # an unjudgeable baseline cannot be the reference either
    v = gate_verdict(await compare_runs(store, erroring["id"], good["id"]), GATE,
                     thresholds_of(good))
    assert v.code == 2 and v.reasons[0].startswith("the baseline run cannot be judged")
    # a run that did not finish
    stopped = await make_run(store, [[PASS]] * 20, status="failed")
    cmp = await compare_runs(store, good["id"], stopped["id"])
    assert any("is failed, not done" in w for w in cmp.warnings)
    v = gate_verdict(cmp, GATE, thresholds_of(stopped))
    assert v.code == 2 and "is failed, not done: RuntimeError: provider went away" in v.reasons[0]
    assert v.to_dict()["result"] == "error"
    # nothing in common
    other = await make_run(store, [[PASS]] * 3, case_ids=["x", "y", "z"], dataset_version=7)
    v = gate_verdict(await compare_runs(store, good["id"], other["id"]), GATE,
                     thresholds_of(other))
    assert v.code == 2 and v.reasons == ["the runs share no case; nothing to compare"]


async def test_noop_changes_with_flaky_outputs_do_not_fire_but_a_real_drop_does(
        store: Store) -> None:
    """Ten no-op pairs (200 cases, 10% of them flaky at 50/50): worse and better cases come
    out symmetric and the gate stays quiet; a real 15-point drop fires."""
    rng = random.Random(20240611)
    fired = []
    for _ in range(10):
        probs = noisy_outcomes(rng)
        run_a = await make_run(store, sample(rng, probs))
        run_b = await make_run(store, sample(rng, probs))
        cmp = await compare_runs(store, run_a["id"], run_b["id"])
        assert cmp.worse + cmp.better > 0  # the noise is there
        v = gate_verdict(cmp, GATE, thresholds_of(run_b))
        fired.append(v.code)
    assert fired == [0] * 10

    probs = noisy_outcomes(rng)
    stable = [i for i, p in enumerate(probs) if p == 1.0]
    dropped = list(probs)
    for i in rng.sample(stable, 30):  # 30 of 200 cases now fail: a 15-point drop
        dropped[i] = 0.0
    run_a = await make_run(store, sample(rng, probs))
    run_b = await make_run(store, sample(rng, dropped))
    cmp = await compare_runs(store, run_a["id"], run_b["id"])
    v = gate_verdict(cmp, GATE, thresholds_of(run_b))
    assert (v.code, v.regression) == (1, True)
    assert cmp.effect is not None and cmp.effect < -0.1
    assert re.search(r"sign test p = [0-9.e-]+ < alpha 0.05", v.reasons[0])

