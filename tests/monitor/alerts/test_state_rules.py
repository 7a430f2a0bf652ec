"""Rules over the review queue and the eval runs, on SQLite and PostgreSQL: the backlog and
the oldest wait per feature, an empty queue as zero (not missing data), each suite's latest
run's pass rate in the window, no run as no data; and what validation refuses."""

from __future__ import annotations

from typing import Any

import pytest

from keel.config import AlertRule, parse_config
from keel.errors import ConfigError
from keel.monitor.alerts import State, evaluate
from keel.review import ReviewService
from keel.store import Store
from keel.store import evals as eval_queries
from keel.types import new_trace_id

NOW = 1_790_000_000.0
HOUR = 3600.0


def rule(**kw: Any) -> AlertRule:
    return AlertRule.model_validate({"name": "r", **kw})


async def hold(store: Store, feature: str, team: str, at: float) -> None:
    service = ReviewService(store, clock=lambda: at)
    await service.hold(trace_id=new_trace_id(), key_id=None, team=team, feature=feature,
                       policy="p", policy_version="v1", reasons=[], mode="async",
                       timeout_s=86400, request=None,
                       completion={"choices": [{"message": {"content": "held"}}]})


async def test_review_backlog_and_age_per_feature(store: Store) -> None:
    empty = await evaluate(store, [rule(measure="review_backlog", warning=5)], NOW)
    assert [(e.series, e.state, e.value) for e in empty] == [({}, State.OK, 0.0)]
    for i in range(6):
        await hold(store, "contracts", "legal", NOW - (i + 1) * HOUR)
    await hold(store, "support", "emea", NOW - 600)
    found = await evaluate(store, [
        rule(name="backlog", measure="review_backlog", warning=5, critical=10,
             scope={"by": "feature"}),
        rule(name="age", measure="review_age_s", warning=4 * HOUR, critical=12 * HOUR,
             scope={"feature": "contracts"})], NOW)
    by = {(e.rule, tuple(e.series.items())): e for e in found}
    contracts = by[("backlog", (("feature", "contracts"),))]
    assert (contracts.state, contracts.value, contracts.n) == (State.WARNING, 6.0, 6)
    assert contracts.reason == ("answers waiting for review 6 is above the warning level 5: "
                                "6 answers waiting for review, the oldest for 6.0 h")
    assert by[("backlog", (("feature", "support"),))].state is State.OK
    oldest = by[("age", ())]
    assert (oldest.state, oldest.value) == (State.WARNING, 6 * HOUR)


async def test_eval_pass_rate_of_each_suites_latest_run(store: Store) -> None:
    async def run(suite: str, finished: float, passed: int, failed: int) -> None:
        run_id = new_trace_id()
        await eval_queries.create_run(store, {
            "id": run_id, "suite": suite, "group_id": run_id, "target": "t",
            "dataset_name": "d", "dataset_version": 1, "config": "{}", "status": "running",
            "started_at": finished - 60, "cases": passed + failed})
        await eval_queries.finish_run(store, run_id, {
            "status": "done", "finished_at": finished, "executions": passed + failed,
            "passed": passed, "failed": failed})

    await run("support", NOW - 30 * HOUR, 10, 0)  # outside the 24h window
    await run("support", NOW - 2 * HOUR, 7, 3)
    await run("billing", NOW - HOUR, 19, 1)
    r = rule(measure="eval_pass_rate", window="24h", direction="below", warning=0.9,
             critical=0.75)
    found = {e.series["suite"]: e for e in await evaluate(store, [r], NOW)}
    assert (found["support"].state, found["support"].value) == (State.ALERT, 0.7)
    assert "in run" in found["support"].reason and found["support"].n == 10
    assert (found["billing"].state, found["billing"].value) == (State.OK, 0.95)
    assert await evaluate(store, [r], NOW + 48 * HOUR) == []  # no run in the window


def test_validation_refuses_what_these_measures_cannot_do() -> None:
    cases = [({"measure": "review_backlog", "kind": "change", "warning": 1}, "kind: threshold"),
             ({"measure": "review_age_s", "warning": 1, "scope": {"by": "model"}},
              "per feature and team"),
             ({"measure": "eval_pass_rate", "warning": 0.9, "direction": "below",
               "scope": {"feature": "x"}}, "one series per eval suite")]
    for spec, said in cases:
        with pytest.raises(ConfigError) as info:
            parse_config({"alerts": {"rules": [{"name": "r", **spec}]}}, "keel.yaml")
        assert said in str(info.value), (spec, str(info.value))
