"""Rules evaluated over histories written through keel's store, on SQLite and PostgreSQL:
each kind's state, value, comparison and reason; per-series scopes; min_sample and no_data;
rules sharing a window and scope read once."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import event

from keel.config import AlertRule
from keel.monitor.alerts import State, evaluate
from keel.store import Store

from .history import HOUR, NOW, Slice, day, hour, write


def rule(**kw: Any) -> AlertRule:
    return AlertRule.model_validate({"name": "r", "measure": "error_rate", **kw})


async def test_threshold_per_series_with_its_reason(store: Store) -> None:
    rng = random.Random(1)
    await write(store, [Slice(*hour(0), 100, model="m1", errors=10),
                        Slice(*hour(0), 100, model="m2", errors=1),
                        Slice(*hour(1), 100, model="m1", errors=50)], rng)
    r = rule(warning=0.05, critical=0.08, scope={"feature": "support", "by": "model"})
    m1, m2 = await evaluate(store, [r], NOW)
    assert (m1.series, m1.state, m1.value, m1.compared_with, m1.n) == (
        {"model": "m1"}, State.ALERT, 0.1, 0.08, 100)
    assert m1.reason == "error rate 10% is above the critical level 8%, on 100 requests"
    assert (m1.since, m1.until) == (NOW - HOUR, NOW)
    assert (m2.series, m2.state, m2.value) == ({"model": "m2"}, State.OK, 0.01)
    assert m2.reason == "error rate 1% is within the level 5%, on 100 requests"
    (overall,) = await evaluate(store, [rule(critical=0.05)], NOW)
    assert (overall.series, overall.state, overall.n) == ({}, State.ALERT, 200)
    assert overall.value == pytest.approx(0.055)


async def test_change_against_the_day_before_and_n_windows_back(store: Store) -> None:
    rng = random.Random(2)
    await write(store, [
        Slice(*day(0), 60, outcomes={"edited": 15, "accepted": 35}),
        Slice(*day(1), 60, outcomes={"edited": 6, "accepted": 44}),
        Slice(*hour(0), 30, feature="search", cost_usd=0.02),
        Slice(*hour(24), 30, feature="search", cost_usd=0.01),
        Slice(*hour(1), 30, feature="search", cost_usd=0.019)], rng)
    r = rule(measure="rework_rate", kind="change", window="24h", warning=0.5, critical=1.0,
             scope={"feature": "support"})
    (ev,) = await evaluate(store, [r], NOW)
    assert (ev.state, ev.value, ev.compared_with, ev.n) == (State.ALERT, 0.3, 0.12, 50)
    assert ev.score == pytest.approx(1.5)
    assert ev.reason == ("rework rate 30% against 12% the day before (+150%), "
                         "on 50 judged answers")
    cost = rule(measure="cost_per_request_usd", kind="change", window="1h", warning=0.5,
                scope={"feature": "search"})
    (hour_before,) = await evaluate(store, [cost], NOW)
    assert hour_before.state is State.OK and "the hour before" in hour_before.reason
    yesterday = cost.model_copy(update={"windows_back": 24})
    (ev,) = await evaluate(store, [yesterday], NOW)
    assert ev.state is State.WARNING and ev.score == pytest.approx(1.0, abs=0.1)
    assert "the same 1h the day before" in ev.reason


async def test_anomaly_against_the_series_history(store: Store) -> None:
    rng = random.Random(3)
    past = [Slice(*hour(i), 40, latency_ms=rng.uniform(190, 210)) for i in range(1, 9)]
    await write(store, [*past, Slice(*hour(0), 40, latency_ms=600)], rng)
    r = rule(measure="latency_p95_ms", kind="anomaly", warning=3, critical=6, history=8)
    (ev,) = await evaluate(store, [r], NOW)
    assert ev.state is State.ALERT and ev.value is not None and ev.value > 550
    assert ev.compared_with is not None and 190 < ev.compared_with < 240
    assert len(ev.details["history"]) == 8
    assert "over the 8 windows of 1h before" in ev.reason
    # the same rule an hour earlier: that hour was like the ones before it
    (earlier,) = await evaluate(store, [r], NOW - HOUR)
    assert earlier.state is State.OK
    assert len(earlier.details["history"]) == 7


async def test_min_sample_and_no_data_say_what_a_quiet_window_means(store: Store) -> None:
    rng = random.Random(4)
    await write(store, [Slice(*hour(0), 20, outcomes={"escalated": 5, "accepted": 5})], rng)
    base = {"measure": "escalation_rate", "critical": 0.2, "min_sample": 30}
    states = {}
    for policy in ("ok", "no_data", "alert"):
        (ev,) = await evaluate(store, [rule(**base, no_data=policy)], NOW)
        states[policy] = ev.state
        assert ev.reason == ("only 10 judged answers in the last 1h, fewer than min_sample 30 "
                             f"(no_data: {policy})")
        assert ev.value == 0.5 and ev.n == 10
    assert states == {"ok": State.OK, "no_data": State.NO_DATA, "alert": State.ALERT}
    (enough,) = await evaluate(store, [rule(**{**base, "min_sample": 10})], NOW)
    assert enough.state is State.ALERT
    # nothing at all in the window: no requests, and a change has no baseline
    (empty,) = await evaluate(store, [rule(critical=0.1)], NOW + 3 * HOUR)
    assert (empty.state, empty.value, empty.n) == (State.NO_DATA, None, 0)
    assert empty.reason == "no requests in the last 1h (no_data: no_data)"
    change = rule(measure="requests", kind="change", warning=1.0)
    (from_zero,) = await evaluate(store, [change], NOW)  # a count of 0 is a value
    assert (from_zero.state, from_zero.score) == (State.WARNING, float("inf"))
    assert from_zero.reason == ("requests 20 against 0 the hour before (up from zero), "
                                "on 20 requests")
    (nobase,) = await evaluate(store, [change.model_copy(update={"min_sample": 1})], NOW)
    assert nobase.state is State.NO_DATA
    assert nobase.reason.startswith("no requests in the baseline window (the hour before)")


async def test_a_series_gone_silent_is_no_data_and_divergence_compares_peers(
        store: Store) -> None:
    rng = random.Random(5)
    await write(store, [Slice(*hour(0), 50, team="a", outcomes={"accepted": 40}),
                        Slice(*hour(0), 50, team="b", outcomes={"accepted": 10,
                                                                "rejected": 30}),
                        Slice(*hour(1), 50, team="c", outcomes={"accepted": 40})], rng)
    r = rule(measure="acceptance_rate", kind="divergence", direction="below", warning=0.25,
             scope={"by": "team"})
    a, b, c = await evaluate(store, [r], NOW)
    assert (a.series, a.state) == ({"team": "a"}, State.OK)
    assert (b.series, b.state, b.compared_with) == ({"team": "b"}, State.WARNING, 0.625)
    assert b.reason == ("acceptance rate 25% against 62% across all teams (-60%), "
                        "on 40 judged answers")
    assert (c.series, c.state) == ({"team": "c"}, State.NO_DATA)


async def test_rules_sharing_a_window_and_scope_are_read_once(store: Store) -> None:
    rng = random.Random(6)
    await write(store, [Slice(*hour(0), 20), Slice(*hour(1), 20)], rng)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(store.engine.sync_engine, "before_cursor_execute", count)
    shared = [rule(name="a", critical=0.1, scope={"by": "model"}),
              rule(name="b", measure="latency_p95_ms", critical=1000, scope={"by": "model"}),
              rule(name="c", measure="requests", kind="change", warning=1.0,
                   scope={"by": "model"})]
    evaluations = await evaluate(store, shared, NOW)
    assert [e.rule for e in evaluations] == ["a", "b", "c"]
    assert len(statements) == 3  # one compare: counters, sketches, errors (no value units)
    statements.clear()
    await evaluate(store, [*shared, rule(name="d", window="24h", critical=0.1)], NOW)
    assert len(statements) == 6
    event.remove(store.engine.sync_engine, "before_cursor_execute", count)
