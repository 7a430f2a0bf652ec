"""Rollups maintained incrementally as traces land must equal a recomputation from the raw
traces (random traces, random batches; two concurrent writers on PostgreSQL), survive a
replay without double counting, and be rebuildable. The summary's measures are checked
against values computed by hand from the same traces."""

from __future__ import annotations

import asyncio
import math
import random
from collections import defaultdict
from typing import Any

import pytest
import sqlalchemy as sa

from keel import sketch
from keel.monitor.measures import Filters, summary
from keel.store import Store
from keel.store import rollups as r
from keel.store.schema import rollup_errors, rollup_sketches, rollups
from keel.store.traces import TRACE_COLUMNS, insert_rows, trace_values
from keel.types import Trace, Usage

DAY = 86400.0
T0 = 1_790_000_000.0 - (1_790_000_000 % DAY)  # a UTC midnight


def random_trace(rng: random.Random, i: int, span_s: float = 3 * DAY) -> Trace:
    ok = rng.random() > 0.1
    t = Trace(id=f"t{i:08d}-{rng.getrandbits(32):08x}", start_time=T0 + rng.random() * span_s,
              endpoint="chat", team=rng.choice(["a", "b"]),
              feature=rng.choice(["support", "search", None]),
              model_requested=rng.choice(["m1", "m2"]))
    t.status = 200 if ok else rng.choice([429, 500, 502])
    t.error_type = None if ok else rng.choice(["rate_limited", "upstream_error"])
    t.latency_ms = rng.lognormvariate(5, 1)
    t.ttft_ms = rng.choice([None, rng.uniform(5, 400)])
    t.usage = Usage(input_tokens=rng.randint(0, 900), output_tokens=rng.randint(0, 300),
                    cached_tokens=rng.randint(0, 50), reasoning_tokens=rng.randint(0, 20))
    t.cost_usd = rng.random() / 100
    t.cache_hit = rng.random() < 0.1
    t.cost_saved_usd = 0.001 if t.cache_hit else 0.0
    if rng.random() < 0.5:
        t.prompt_name, t.prompt_version = "support-reply", rng.randint(1, 3)
    t.attempts = rng.choice([1, 1, 1, 2, 3])
    skipped = t.attempts == 1 and rng.random() < 0.2  # the first deployment's circuit open
    t.attempt_log = [{"model": f"m{i}", "deployment": None if i == 0 and skipped else f"d{i}",
                      "status": 503 if i == 0 and skipped else 200, "error_type": None,
                      "latency_ms": 1.0} for i in range(t.attempts + skipped)]
    roll = rng.random()
    if roll < 0.3:  # guardrail findings: a flag, a block, or both kinds in one trace
        actions = ["flag"] if roll < 0.15 else ["block"] if roll < 0.25 else ["flag", "block"]
        t.guard = [{"scanner": "injection", "score": 0.9, "triggered": True, "matches": [],
                    "explanation": "x", "stage": "input", "action": a} for a in actions]
    t.end_time = t.start_time + t.latency_ms / 1000
    return t


def expected_rollups(trace_list: list[Trace]) -> tuple[dict[Any, dict[str, float]],
                                                       dict[Any, int], dict[Any, int]]:
    """An independent, plain recomputation from the traces."""
    counters: dict[Any, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    errors: dict[Any, int] = defaultdict(int)
    sketches: dict[Any, int] = defaultdict(int)
    for t in trace_list:
        prompt = f"{t.prompt_name}@{t.prompt_version}" if t.prompt_name else ""
        for g, size in (("m", 60), ("h", 3600), ("d", 86400)):
            key = (g, math.floor(t.start_time / size) * size, t.feature or "", t.team or "",
                   t.model_requested or "", prompt)
            c = counters[key]
            c["requests"] += 1
            c["input_tokens"] += t.usage.input_tokens
            c["output_tokens"] += t.usage.output_tokens
            c["cost_usd"] += t.cost_usd
            c["cache_hits"] += t.cache_hit
            actions = {h["action"] for h in t.guard or ()}
            c["guard_flagged"] += "flag" in actions
            c["guard_blocked"] += "block" in actions
            if t.status < 400 and len(t.attempt_log or ()) > 1:
                c["fallbacks"] += 1
            if t.status >= 400:
                c["errors"] += 1
                errors[(*key, t.error_type)] += 1
            else:
                sketches[(*key, "latency", sketch.index(t.latency_ms))] += 1
                if t.ttft_ms is not None:
                    sketches[(*key, "ttft", sketch.index(t.ttft_ms))] += 1
    return counters, errors, sketches


async def stored_rollups(store: Store) -> tuple[dict[Any, dict[str, float]], dict[Any, int],
                                                  dict[Any, int]]:
    keys = [rollups.c[k] for k in r.KEY]
    async with store.connect() as conn:
        rows = (await conn.execute(sa.select(
            *keys, rollups.c.requests, rollups.c.errors, rollups.c.input_tokens,
            rollups.c.output_tokens, rollups.c.cost_usd, rollups.c.cache_hits,
            rollups.c.fallbacks, rollups.c.guard_flagged, rollups.c.guard_blocked))).all()
        errs = (await conn.execute(sa.select(rollup_errors))).all()
        sks = (await conn.execute(sa.select(rollup_sketches))).all()
    counters = {tuple(row[:6]): dict(zip(("requests", "errors", "input_tokens",
                                          "output_tokens", "cost_usd", "cache_hits",
                                          "fallbacks", "guard_flagged", "guard_blocked"),
                                         row[6:], strict=True)) for row in rows}
    return (counters, {tuple(e[:7]): int(e[7]) for e in errs},
            {tuple(s[:8]): int(s[8]) for s in sks})


def assert_equal(stored: Any, expected: Any) -> None:
    s_counters, s_errors, s_sketches = stored
    e_counters, e_errors, e_sketches = expected
    assert set(s_counters) == set(e_counters)
    for key, exp in e_counters.items():
        got = s_counters[key]
        for name in ("requests", "errors", "input_tokens", "output_tokens", "cache_hits",
                     "fallbacks", "guard_flagged", "guard_blocked"):
            assert got[name] == exp.get(name, 0), (key, name)
        assert got["cost_usd"] == pytest.approx(exp["cost_usd"], rel=1e-9, abs=1e-12)
    assert s_errors == dict(e_errors)
    assert s_sketches == dict(e_sketches)


async def write(store: Store, trace_list: list[Trace], rng: random.Random,
                replay: bool = False) -> None:
    i = 0
    while i < len(trace_list):
        n = rng.randint(1, 60)
        batch = trace_list[i:i + n]
        await insert_rows(store, [trace_values(t) for t in batch], [], replay=replay)
        i += n


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_incremental_rollups_equal_a_recomputation(store: Store, seed: int) -> None:
    rng = random.Random(seed)
    trace_list = [random_trace(rng, i) for i in range(400)]
    await write(store, trace_list, rng)
    assert_equal(await stored_rollups(store), expected_rollups(trace_list))
    # a replay of already-stored traces (spill file after a partial failure) adds nothing
    await write(store, trace_list[:150], rng, replay=True)
    assert_equal(await stored_rollups(store), expected_rollups(trace_list))
    # rebuilding from the raw traces gives the same tables
    counts = await r.rebuild(store, T0)
    assert counts["traces"] == len(trace_list)
    assert_equal(await stored_rollups(store), expected_rollups(trace_list))


async def test_two_concurrent_writers_on_postgresql(postgres_url: str) -> None:
    from tests.conftest import _reset_postgres

    await _reset_postgres(postgres_url)
    a, b = Store(postgres_url), Store(postgres_url)
    await a.upgrade()
    rng = random.Random(7)
    # few keys, so both writers hit the same rollup rows at the same time
    trace_list = [random_trace(rng, i, span_s=600) for i in range(1200)]
    try:
        await asyncio.gather(write(a, trace_list[0::2], random.Random(1)),
                             write(b, trace_list[1::2], random.Random(2)))
        assert_equal(await stored_rollups(a), expected_rollups(trace_list))
    finally:
        await a.aclose()
        await b.aclose()


def test_sketch_quantiles_are_within_one_percent() -> None:
    rng = random.Random(3)
    values = sorted(rng.lognormvariate(4, 1.5) for _ in range(20_000))
    counts: dict[int, int] = defaultdict(int)
    for v in values:
        counts[sketch.index(v)] += 1
    for q, got in zip((0.5, 0.95, 0.99), sketch.quantiles(counts.items(), (0.5, 0.95, 0.99)),
                      strict=True):
        exact = values[math.ceil(q * len(values)) - 1]
        assert got is not None and abs(got - exact) / exact <= sketch.ALPHA + 1e-9
    assert sketch.quantiles([], (0.5,)) == [None]
    assert sketch.value_of(sketch.index(0.0)) == 0.0


async def test_summary_measures_match_the_traces(store: Store) -> None:
    rng = random.Random(11)
    trace_list = [random_trace(rng, i, span_s=2 * DAY) for i in range(600)]
    await write(store, trace_list, rng)
    # feedback and outcomes, rolled up the way the API does (Deltas in one transaction)
    support = [t for t in trace_list if t.feature == "support"]
    fb = [{"trace_time": t.start_time, "feature": "support", "team": t.team,
           "model": t.model_requested,
           "prompt": f"{t.prompt_name}@{t.prompt_version}" if t.prompt_name else "",
           "outcome": rng.choice(["accepted", "accepted", "edited", "escalated"]),
           "critical_error": i % 25 == 0, "rework": 0.2 if i % 2 else None}
          for i, t in enumerate(support)]
    outs = [{"at": T0 + rng.random() * 2 * DAY, "feature": "support", "name": name,
             "value": 1.0} for name in ["ticket_resolved"] * 40 + ["other"] * 7]
    d = r.Deltas()
    for row in fb:
        d.add_feedback(row)
    for row in outs:
        d.add_outcome(row)
    async with store.begin() as conn:
        await r.apply(conn, store, d)

    data = await summary(store, T0, T0 + 2 * DAY, filters=Filters(feature="support"),
                         value_units={"support": "ticket_resolved"})
    assert data["granularity"] == "h"
    (g,) = data["groups"]
    ok = [t for t in support if t.status < 400]
    assert g["requests"] == len(support) and g["errors"] == len(support) - len(ok)
    assert g["availability"] == pytest.approx(len(ok) / len(support))
    cost = sum(t.cost_usd for t in support)
    assert g["cost_usd"] == pytest.approx(cost)
    assert g["cost_per_request_usd"] == pytest.approx(cost / len(support))
    lat = sorted(t.latency_ms for t in ok)
    exact_p95 = lat[math.ceil(0.95 * len(lat)) - 1]
    assert abs(g["latency_ms"]["p95"] - exact_p95) / exact_p95 <= sketch.ALPHA + 1e-9
    judged = len(fb)
    accepted = sum(1 for x in fb if x["outcome"] == "accepted")
    assert g["acceptance_rate"] == pytest.approx(accepted / judged)
    assert g["escalation_rate"] == pytest.approx(
        sum(1 for x in fb if x["outcome"] == "escalated") / judged)
    assert g["mean_rework"] == pytest.approx(0.2)
    assert g["critical_errors_per_1k"] == pytest.approx(
        sum(1 for x in fb if x["critical_error"]) * 1000 / len(support))
    assert g["value_units"] == 40.0
    assert g["cost_per_value_unit_usd"] == pytest.approx(cost / 40)
    by_type = defaultdict(int)
    for t in support:
        if t.status >= 400:
            by_type[t.error_type] += 1
    assert g["errors_by_type"] == dict(by_type)

    # grouped by model: every trace counted once; value units only per feature
    grouped = await summary(store, T0, T0 + 2 * DAY, group_by=("model",),
                            value_units={"support": "ticket_resolved"})
    assert sum(x["requests"] for x in grouped["groups"]) == len(trace_list)
    assert all("value_units" not in x for x in grouped["groups"])


async def test_trend_says_whether_unit_cost_falls_as_volume_grows(store: Store) -> None:
    trace_list = []
    for i in range(100):  # first day: 20 requests at $0.01; second: 80 at $0.005
        first = i < 20
        t = Trace(id=f"x{i:04d}", start_time=T0 + (i * 600 if first else DAY + i * 600),
                  endpoint="chat", feature="f", team="t", model_requested="m")
        t.cost_usd = 0.01 if first else 0.005
        t.latency_ms = 100.0
        trace_list.append(t)
    await insert_rows(store, [trace_values(t) for t in trace_list], [])
    data = await summary(store, T0, T0 + 2 * DAY, group_by=("feature",))
    trend = data["groups"][0]["trend"]
    assert trend["unit"] == "request"
    assert trend["volume_change"] == pytest.approx(3.0)
    assert trend["unit_cost_change"] == pytest.approx(-0.5)
    assert trend["unit_cost_falling_as_volume_grows"] is True


async def test_summary_refuses_bad_grouping_and_windows(store: Store) -> None:
    from keel.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="cannot group by 'day'"):
        await summary(store, T0, T0 + DAY, group_by=("day",))
    with pytest.raises(InvalidRequest, match="after"):
        await summary(store, T0 + DAY, T0)


def test_trace_columns_hold_what_rollups_read() -> None:
    for name in ("start_time", "feature", "team", "model_requested", "prompt_name",
                 "prompt_version", "status", "error_type", "latency_ms", "ttft_ms"):
        assert name in TRACE_COLUMNS
