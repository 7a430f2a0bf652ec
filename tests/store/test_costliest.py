"""The most expensive traces of a window, on both dialects: by the cost index from the top,
and by reading the window when the index's top holds too few of its traces."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from keel.store import Store
from keel.store.traces import COSTLIEST_COLUMNS, TraceFilter, costliest, insert_rows, trace_values
from keel.types import Trace, Usage, new_trace_id

NOW = 1_800_000_000.0


def _trace(start: float, cost: float, feature: str, team: str, model: str = "m1",
           status: int = 200) -> Trace:
    t = Trace(id=new_trace_id(), start_time=start, endpoint="chat", feature=feature, team=team,
              model_requested=model, attempts=1, usage=Usage(input_tokens=100, output_tokens=20))
    t.finish(status)
    t.end_time = start + 1
    t.cost_usd = cost
    return t


@pytest.fixture
async def stored(store: Store) -> list[Trace]:
    """600 traces over ten days: the last day's are cheap (cents), the earlier ones dear
    (dollars), a few unpriced; two features and two teams."""
    rnd = random.Random(3)
    out: list[Trace] = []
    for i in range(600):
        start = NOW - 10 * 86400 + i * 1440.0  # every 24 minutes
        recent = start >= NOW - 86400
        cost = 0.0 if i % 50 == 7 else round(
            rnd.uniform(0.01, 0.09) if recent else rnd.uniform(1.0, 9.0), 6)
        out.append(_trace(start, cost, ("support", "research")[i % 2], ("alpha", "beta")[i % 3 == 0],
                          model=("m1", "m2")[i % 4 == 0]))
    await insert_rows(store, [trace_values(t) for t in out], [])
    return out


def _expected(traces: list[Trace], f: TraceFilter, limit: int) -> list[str]:
    assert f.since is not None and f.until is not None
    hits = [t for t in traces if f.since <= t.start_time < f.until and t.cost_usd > 0
            and f.feature in (None, t.feature) and f.team in (None, t.team)
            and f.model in (None, t.model_requested)]
    hits.sort(key=lambda t: (t.cost_usd, t.id), reverse=True)
    return [t.id for t in hits[:limit]]


async def test_the_costliest_of_a_wide_window_come_from_the_top_of_the_index(
        store: Store, stored: list[Trace]) -> None:
    f = TraceFilter(since=NOW - 8 * 86400, until=NOW - 86400)
    rows = await costliest(store, f, 20)
    assert [r["id"] for r in rows] == _expected(stored, f, 20)
    assert set(rows[0]) == set(COSTLIEST_COLUMNS)
    costs = [r["cost_usd"] for r in rows]
    assert costs == sorted(costs, reverse=True) and costs[-1] >= 1.0
    # the same answer when the window is read by time (a small expected count)
    by_time = await costliest(store, f, 20, expected=100)
    assert [r["id"] for r in by_time] == [r["id"] for r in rows]


async def test_a_window_the_top_of_the_index_misses_is_read_by_time(
        store: Store, stored: list[Trace]) -> None:
    # the last day's traces are cheaper than every earlier one: the 40 costliest of all
    # time hold none of them, so the window itself is read
    f = TraceFilter(since=NOW - 86400, until=NOW)
    rows = await costliest(store, f, 10, probe=40)
    assert [r["id"] for r in rows] == _expected(stored, f, 10)
    assert all(r["cost_usd"] < 0.1 for r in rows) and len(rows) == 10


async def test_filters_apply_and_unpriced_traces_are_left_out(
        store: Store, stored: list[Trace]) -> None:
    for f in (TraceFilter(feature="research", team="beta", since=NOW - 10 * 86400, until=NOW),
              TraceFilter(model="m2", since=NOW - 5 * 86400, until=NOW),
              TraceFilter(feature="support", since=NOW - 86400, until=NOW)):
        for expected in (None, 10):
            rows = await costliest(store, f, 15, expected=expected)
            assert [r["id"] for r in rows] == _expected(stored, f, 15), (f, expected)
    everything = await costliest(store, TraceFilter(since=NOW - 11 * 86400, until=NOW), 1000)
    assert len(everything) == sum(1 for t in stored if t.cost_usd > 0)
    assert await costliest(store, TraceFilter(since=NOW, until=NOW + 60), 5) == []


async def test_the_migrated_traces_table_has_the_cost_index(store: Store) -> None:
    async with store.connect() as conn:
        indexes = await conn.run_sync(lambda c: sa.inspect(c).get_indexes("traces"))
    assert {"name": "ix_traces_cost", "column_names": ["cost_usd"]}.items() <= next(
        i for i in indexes if i["name"] == "ix_traces_cost").items()
