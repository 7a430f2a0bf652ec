"""The store on both dialects: migrations, idempotent trace inserts, filters, pagination."""

from __future__ import annotations

import time
from typing import Any

import pytest

from keel.errors import ConfigError
from keel.store import Store, async_url
from keel.store.traces import (
    TraceFilter,
    count_traces,
    get_trace,
    insert_rows,
    list_traces,
    payload_values,
    trace_values,
)
from keel.types import Trace, Usage, new_trace_id


def make_trace(i: int, **kw: object) -> Trace:
    t = Trace(id=new_trace_id(), start_time=time.time() - 100 + i, endpoint="chat",
              feature=str(kw.get("feature", "support")), team=str(kw.get("team", "cx")),
              model_requested=str(kw.get("model", "gpt-4o-mini")), attempts=1,
              usage=Usage(input_tokens=10 + i, output_tokens=5, cached_tokens=2))
    t.finish(int(kw.get("status", 200)))  # type: ignore[call-overload]
    t.cost_usd = 0.001 * i
    t.request_body = {"messages": [{"role": "user", "content": f"q{i}"}]}
    t.response_body = {"choices": [{"message": {"content": f"a{i}"}}]}
    return t


async def test_migrations_are_idempotent_and_at_head(store: Store) -> None:
    from alembic.script import ScriptDirectory

    from keel.store.db import _alembic_config

    heads = ScriptDirectory.from_config(_alembic_config()).get_heads()
    assert len(heads) == 1, f"migrations branch: {heads}"  # one line of history
    await store.upgrade()
    assert await store.current_revision() == heads[0]
    await store.ping()


async def test_trace_round_trip_keeps_numbers_and_payloads(store: Store) -> None:
    t = make_trace(3)
    t.tags = {"env": "prod"}
    t.ttft_ms = 12.5
    await insert_rows(store, [trace_values(t)], [payload_values(t)])
    got = await get_trace(store, t.id)
    assert got is not None
    assert got["feature"] == "support" and got["input_tokens"] == 13
    assert got["cached_tokens"] == 2 and got["ttft_ms"] == 12.5
    assert got["tags"] == {"env": "prod"}
    assert got["request"]["messages"][0]["content"] == "q3"
    assert got["response"]["choices"][0]["message"]["content"] == "a3"
    assert got["cost_usd"] == pytest.approx(0.003)


async def test_insert_is_idempotent_for_replayed_batches(store: Store) -> None:
    traces = [make_trace(i) for i in range(5)]
    rows = [trace_values(t) for t in traces]
    payloads = [payload_values(t) for t in traces]
    await insert_rows(store, rows, payloads)
    await insert_rows(store, rows, payloads)
    assert await count_traces(store) == 5


async def test_filters_and_cursor_pagination(store: Store) -> None:
    traces = [make_trace(i, feature="support" if i % 2 else "search",
                         status=200 if i % 3 else 502) for i in range(12)]
    await insert_rows(store, [trace_values(t) for t in traces], [])
    support, _ = await list_traces(store, TraceFilter(feature="support"), limit=100)
    assert len(support) == 6 and all(r["feature"] == "support" for r in support)
    errors, _ = await list_traces(store, TraceFilter(status="error"), limit=100)
    assert {r["status"] for r in errors} == {502} and len(errors) == 4
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = await list_traces(store, TraceFilter(), limit=5, cursor=cursor)
        seen += [r["id"] for r in page]
        if cursor is None:
            break
    assert seen == sorted((t.id for t in traces), reverse=True)
    recent, _ = await list_traces(store, TraceFilter(since=traces[9].start_time), limit=100)
    assert len(recent) == 3
    for probe in (5000, 3):  # the probe plan, and the sorted plan when the probe is short
        oldest: list[str] = []
        cursor = None
        while True:
            page, cursor = await list_traces(store, TraceFilter(feature="support"), limit=2,
                                             cursor=cursor, oldest_first=True, probe=probe)
            oldest += [r["id"] for r in page]
            if cursor is None:
                break
        assert oldest == sorted(t.id for t in traces if t.feature == "support")


def test_database_urls_map_to_async_drivers() -> None:
    assert async_url("sqlite:///a/b.db") == "sqlite+aiosqlite:///a/b.db"
    assert async_url("postgresql://u@h:5432/d") == "postgresql+asyncpg://u@h:5432/d"
    assert async_url("postgres://u@h/d") == "postgresql+asyncpg://u@h/d"
    with pytest.raises(ConfigError, match=r"unsupported URL 'mysql://\.\.\.'"):
        async_url("mysql://u@h/d")


async def test_the_migrated_schema_is_the_declared_one(store: Store) -> None:
    """What the migrations build is what keel.store.schema declares: no table, column or
    index one has and the other lacks."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from keel.store.schema import metadata

    await store.upgrade()

    def diff(conn: Any) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        return [d for d in compare_metadata(ctx, metadata)
                if not (isinstance(d, tuple) and d[0] == "remove_table"
                        and d[1].name == "alembic_version")]

    async with store.engine.connect() as conn:
        found = await conn.run_sync(diff)
    assert found == []
