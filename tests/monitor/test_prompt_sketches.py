"""The coarse sketch level (``rollup_prompt_sketches``: per feature and prompt) holds, index
by index, the sum of the full rows over teams and models, after writes, a replay and a
rebuild, and after the migration that fills it from the full rows; the summary and the
comparison give the same percentiles from it as from the full level, and skip the sketches
a caller does not ask for."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from keel import sketch
from keel.errors import InvalidRequest
from keel.monitor.compare import compare
from keel.monitor.measures import QUANTILES, Filters, sketch_table, summary
from keel.store import Store
from keel.store import rollups as r
from keel.store.db import _alembic_config
from keel.store.schema import rollup_prompt_sketches, rollup_sketches
from tests.monitor.test_rollups import DAY, T0, random_trace, write

COARSE_KEY = ("granularity", "bucket", "feature", "prompt", "metric", "idx")


async def _levels(store: Store) -> tuple[dict[Any, int], dict[Any, int]]:
    """The full level's hour and day rows added up per coarse key, and the coarse level as
    stored."""
    full, coarse = rollup_sketches.c, rollup_prompt_sketches.c
    async with store.connect() as conn:
        summed = (await conn.execute(
            sa.select(*[full[k] for k in COARSE_KEY], sa.func.sum(full["count"]))
            .where(full.granularity.in_(r.PROMPT_GRANULARITIES))
            .group_by(*[full[k] for k in COARSE_KEY]))).all()
        stored = (await conn.execute(sa.select(*[coarse[k] for k in COARSE_KEY],
                                               coarse["count"]))).all()
    return ({tuple(x[:6]): int(x[6]) for x in summed},
            {tuple(x[:6]): int(x[6]) for x in stored})


async def test_the_coarse_level_is_the_full_one_summed_after_writes_and_rebuild(
        store: Store) -> None:
    rng = random.Random(5)
    trace_list = [random_trace(rng, i) for i in range(500)]
    await write(store, trace_list, rng)
    summed, stored = await _levels(store)
    assert stored and stored == summed
    async with store.connect() as conn:  # two teams and two models: fewer coarse rows
        full_rows = (await conn.execute(
            sa.select(sa.func.count()).select_from(rollup_sketches)
            .where(rollup_sketches.c.granularity.in_(r.PROMPT_GRANULARITIES)))).scalar_one()
    assert len(stored) < full_rows
    await write(store, trace_list[:200], rng, replay=True)  # a replay adds nothing
    assert await _levels(store) == (summed, stored)
    # a rebuild of the second day on: the same coarse rows
    counts = await r.rebuild(store, T0 + DAY)
    assert counts["traces"] == sum(1 for t in trace_list if t.start_time >= T0 + DAY)
    assert await _levels(store) == (summed, stored)


def _downgrade(connection: Connection, revision: str) -> None:
    cfg = _alembic_config()
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


async def test_the_migration_fills_the_coarse_level_from_the_full_one(store: Store) -> None:
    rng = random.Random(9)
    await write(store, [random_trace(rng, i) for i in range(300)], rng)
    summed, _ = await _levels(store)
    async with store.engine.begin() as conn:
        await conn.run_sync(_downgrade, "0015")
        assert not await conn.run_sync(
            lambda c: sa.inspect(c).has_table("rollup_prompt_sketches"))
    await store.upgrade()
    assert await _levels(store) == (summed, summed)


def _expected(traces: list[Any], metric: str, keep: Any) -> list[float | None]:
    counts: dict[int, int] = defaultdict(int)
    for t in traces:
        v = t.latency_ms if metric == "latency" else t.ttft_ms
        if t.status < 400 and v is not None and keep(t):
            counts[sketch.index(v)] += 1
    return sketch.quantiles(counts.items(), QUANTILES)


def _q(m: dict[str, Any], metric: str) -> list[float | None]:
    got = m["latency_ms" if metric == "latency" else "ttft_ms"]
    return [got["p50"], got["p95"], got["p99"]]


def test_the_level_is_chosen_by_the_dimensions_involved() -> None:
    for g in ("h", "d"):
        assert sketch_table(Filters(), (), g) is rollup_prompt_sketches
        assert sketch_table(Filters(feature="a"), ("prompt",), g) is rollup_prompt_sketches
        assert sketch_table(Filters(prompt="p@1"), ("feature",), g) is rollup_prompt_sketches
        assert sketch_table(Filters(prompt_name="p"), ("prompt",), g) is rollup_prompt_sketches
        assert sketch_table(Filters(team="a"), ("feature",), g) is rollup_sketches
        assert sketch_table(Filters(), ("model",), g) is rollup_sketches
        assert sketch_table(Filters(feature="a"), ("feature", "team"), g) is rollup_sketches
    assert sketch_table(Filters(), ("feature",), "m") is rollup_sketches  # no minute rows


async def test_summary_gives_the_same_percentiles_from_either_level(store: Store) -> None:
    rng = random.Random(13)
    trace_list = [random_trace(rng, i, span_s=2 * DAY) for i in range(700)]
    await write(store, trace_list, rng)
    until = T0 + 2 * DAY

    def prompt_of(t: Any) -> str:
        return r.prompt_label(t.prompt_name, t.prompt_version)

    # coarse: by feature, by prompt within a feature, overall
    by_feature = await summary(store, T0, until, group_by=("feature",))
    for g in by_feature["groups"]:
        for metric in ("latency", "ttft"):
            assert _q(g, metric) == _expected(
                trace_list, metric, lambda t, g=g: (t.feature or "") == g["feature"])
    in_support = await summary(store, T0, until, filters=Filters(feature="support"),
                               group_by=("prompt",))
    assert len(in_support["groups"]) > 1
    for g in in_support["groups"]:
        assert _q(g, "latency") == _expected(
            trace_list, "latency",
            lambda t, g=g: t.feature == "support" and prompt_of(t) == g["prompt"])
    # full: within a team, by model
    by_model = await summary(store, T0, until, filters=Filters(team="a"), group_by=("model",))
    for g in by_model["groups"]:
        assert _q(g, "latency") == _expected(
            trace_list, "latency", lambda t, g=g: t.team == "a" and t.model_requested == g["model"])
    (overall,) = (await summary(store, T0, until))["groups"]
    assert _q(overall, "latency") == _expected(trace_list, "latency", lambda t: True)
    # the percentiles of the full level per (feature, team), merged over teams by hand, are
    # those of the coarse level per feature
    full = rollup_sketches.c
    async with store.connect() as conn:
        rows = (await conn.execute(
            sa.select(full.feature, full.idx, sa.func.sum(full["count"]))
            .where(full.granularity == by_feature["granularity"], full.metric == "latency",
                   full.bucket >= by_feature["from"], full.bucket < by_feature["to"])
            .group_by(full.feature, full.team, full.idx))).all()
    merged: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for feature, idx, n in rows:
        merged[feature][int(idx)] += int(n)
    for g in by_feature["groups"]:
        assert _q(g, "latency") == sketch.quantiles(merged[g["feature"]].items(), QUANTILES)


async def test_sketches_a_caller_does_not_ask_for_are_not_read(store: Store) -> None:
    rng = random.Random(17)
    trace_list = [random_trace(rng, i, span_s=DAY) for i in range(300)]
    await write(store, trace_list, rng)
    until = T0 + DAY
    every = await summary(store, T0, until, group_by=("feature",))
    latency = await summary(store, T0, until, group_by=("feature",), sketches=("latency",))
    none = await summary(store, T0, until, group_by=("feature",), sketches=())
    assert any(g["ttft_ms"]["p95"] is not None for g in every["groups"])
    for a, b, c in zip(every["groups"], latency["groups"], none["groups"], strict=True):
        assert b["latency_ms"] == a["latency_ms"]
        assert b["ttft_ms"] == {"p50": None, "p95": None, "p99": None}
        assert c["latency_ms"]["p95"] is None and c["latency_ms"]["mean"] is not None
        for m in (b, c):  # everything else is the same
            rest = {k: v for k, v in m.items() if k not in ("latency_ms", "ttft_ms")}
            assert rest == {k: v for k, v in a.items() if k not in ("latency_ms", "ttft_ms")}
    full = await compare(store, T0, until, group_by="feature")
    lean = await compare(store, T0, until, group_by="feature", sketches=("latency",))
    bare = await compare(store, T0, until, group_by="model", sketches=())
    assert [g.name for g in lean.groups] == [g.name for g in full.groups]
    for a, b in zip(full.groups, lean.groups, strict=True):
        assert b.current["latency_ms"] == a.current["latency_ms"]
        assert b.previous["latency_ms"] == a.previous["latency_ms"]
        assert b.current["ttft_ms"]["p95"] is None and b.series == a.series
    assert full.groups[0].current["latency_ms"]["p95"] == pytest.approx(
        _expected(trace_list, "latency", lambda t: True)[1])
    assert all(g.current["latency_ms"]["p95"] is None for g in bare.groups)
    assert bare.groups[0].current["requests"] == len(trace_list)
    with pytest.raises(InvalidRequest):
        await summary(store, T0, until, sketches=("size",))


async def test_compare_gives_the_same_percentiles_from_either_level(store: Store) -> None:
    rng = random.Random(21)
    trace_list = [random_trace(rng, i, span_s=2 * DAY) for i in range(600)]
    await write(store, trace_list, rng)
    since, until = T0 + DAY, T0 + 2 * DAY
    by_feature = await compare(store, since, until, group_by="feature")  # coarse
    by_team = await compare(store, since, until, group_by="team")  # full
    overall_c, overall_f = by_feature.groups[0], by_team.groups[0]
    for side in ("current", "previous"):
        for metric in ("latency", "ttft"):
            assert _q(getattr(overall_c, side), metric) == _q(getattr(overall_f, side), metric)
    for g in by_feature.groups[1:]:
        assert _q(g.current, "latency") == _expected(
            trace_list, "latency",
            lambda t, g=g: (t.feature or "") == g.name and since <= t.start_time < until)
        assert _q(g.previous, "ttft") == _expected(
            trace_list, "ttft",
            lambda t, g=g: (t.feature or "") == g.name and T0 <= t.start_time < since)
    assert overall_c.current["latency_ms"]["p95"] is not None


async def test_a_prompt_name_filter_keeps_that_prompts_versions(store: Store) -> None:
    rng = random.Random(23)
    trace_list = [random_trace(rng, i, span_s=DAY) for i in range(300)]
    await write(store, trace_list, rng)
    until = T0 + DAY
    every = await summary(store, T0, until, group_by=("prompt",), sketches=("latency",))
    named = await summary(store, T0, until, filters=Filters(prompt_name="support-reply"),
                          group_by=("prompt",), sketches=("latency",))
    assert [g["prompt"] for g in named["groups"]] == ["support-reply@1", "support-reply@2",
                                                      "support-reply@3"]
    for a, b in zip(named["groups"], [g for g in every["groups"] if g["prompt"]], strict=True):
        for k in ("prompt", "requests", "errors", "errors_by_type", "tokens"):
            assert a[k] == b[k]
        assert _q(a, "latency") == _q(b, "latency")
        assert a["cost_usd"] == pytest.approx(b["cost_usd"])
    assert (await summary(store, T0, until, filters=Filters(prompt_name="support"),
                          group_by=("prompt",)))["groups"] == []
    assert (await summary(store, T0, until, filters=Filters(prompt_name="support_reply%"),
                          group_by=("prompt",)))["groups"] == []
    cmp = await compare(store, T0, until, filters=Filters(prompt_name="support-reply"),
                        group_by="prompt", sketches=("latency",))
    assert cmp.groups[0].current["requests"] == sum(1 for t in trace_list if t.prompt_name)
