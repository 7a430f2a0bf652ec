"""The trace writer under hostile content and store faults: it never dies, never drops.

Each scenario is run against real SQLite and PostgreSQL stores. Faults come from the
store itself (a trigger that refuses one row), or from a journal collaborator that fails
once; the writer is never mocked.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from keel.store import Store
from keel.store.clean import UNSTORABLE
from keel.store.schema import traces
from keel.store.traces import count_traces, get_trace
from keel.telemetry.journal import Journal
from keel.telemetry.writer import TraceWriter
from tests.store.test_store import make_trace


def nested(depth: int) -> Any:
    value: Any = {"leaf": 1}
    for _ in range(depth):
        value = {"x": value}
    return value


def poison_traces() -> list[Any]:
    """One trace per kind of content a JSON encoder or a database refuses."""
    deep = make_trace(0, team="poison-deep")
    deep.request_body = {"model": "mock", "logit_bias": nested(300)}  # orjson writes 254
    surrogate = make_trace(1, team="poison-surrogate")
    surrogate.request_body = {"messages": [{"role": "user", "content": "hi \udc80 there"}]}
    surrogate.user = "bad \ud800 user"
    long_fields = make_trace(2, team="poison-long")
    long_fields.user = "u" * 300  # the column holds 256
    long_fields.session = "s" * 300
    long_fields.model_requested = "m" * 300
    long_fields.feature = "f" * 200  # 128
    numbers = make_trace(3, team="poison-numbers")
    numbers.usage.input_tokens = 10**15  # past a 32-bit integer column
    numbers.cost_usd = float("nan")
    numbers.ttft_ms = float("inf")
    nul = make_trace(4, team="poison-nul")
    nul.user = "a\x00b"  # PostgreSQL text cannot hold NUL
    huge_int = make_trace(5, team="poison-bigint")
    huge_int.response_body = {"n": 2**70}  # orjson refuses integers past 64 bits
    return [deep, surrogate, long_fields, numbers, nul, huge_int]


async def test_poison_traces_followed_by_normal_ones_are_all_stored(
        store: Store, tmp_path: Path) -> None:
    w = TraceWriter(store, spill_dir=tmp_path / "spill", batch_size=50, flush_interval_s=0.02)
    await w.start()
    poison = poison_traces()
    normal = [make_trace(10 + i) for i in range(100)]
    for t in [*poison, *normal]:
        w.submit(t)
    await w.flush()
    assert await count_traces(store) == len(poison) + 100
    assert w.restarts == 0 and w.rejected == 0 and w.lost == 0
    for t in poison:
        row = await get_trace(store, t.id)
        assert row is not None, t.team
        assert row["input_tokens"] >= 0 and row["latency_ms"] >= 0  # the numeric row kept
    deep = await get_trace(store, poison[0].id)
    assert deep is not None
    marker = deep["request"][UNSTORABLE]
    assert "Recursion" in marker["reason"] or "nest" in marker["reason"]
    assert marker["excerpt"].startswith('{"model": "mock"')
    long_row = await get_trace(store, poison[2].id)
    assert long_row is not None
    assert long_row["user"] == "u" * 256 and len(long_row["feature"]) == 128
    numbers = await get_trace(store, poison[3].id)
    assert numbers is not None
    assert numbers["input_tokens"] == 2**31 - 1 and numbers["cost_usd"] == 0.0
    huge = await get_trace(store, poison[5].id)
    assert huge is not None and UNSTORABLE in huge["response"]
    # The writer goes on storing after all of it.
    later = make_trace(500)
    w.submit(later)
    await w.close()
    assert await get_trace(store, later.id) is not None
    assert w.undrained == 0


async def _refuse_team(store: Store, dialect_name: str, team: str) -> None:
    """A trigger in the store that refuses every row of ``team`` (a fault of the store,
    which no cleaning can avoid)."""
    async with store.begin() as conn:
        if dialect_name == "sqlite":
            await conn.exec_driver_sql(
                "CREATE TRIGGER refuse_team BEFORE INSERT ON traces "
                f"WHEN NEW.team = '{team}' BEGIN SELECT RAISE(ABORT, 'refused'); END")
        else:
            await conn.exec_driver_sql(
                "CREATE OR REPLACE FUNCTION refuse_team() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.team = '{team}' THEN RAISE EXCEPTION 'refused' USING "
                "ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql")
            await conn.exec_driver_sql(
                "CREATE TRIGGER refuse_team BEFORE INSERT ON traces FOR EACH ROW "
                "EXECUTE FUNCTION refuse_team()")


async def _drop_refusal(store: Store, dialect_name: str) -> None:
    async with store.begin() as conn:
        await conn.exec_driver_sql("DROP TRIGGER IF EXISTS refuse_team"
                                   + ("" if dialect_name == "sqlite" else " ON traces"))


async def test_a_row_the_store_refuses_is_isolated_and_set_aside_not_its_batch(
        store: Store, tmp_path: Path, dialect: str) -> None:
    await _refuse_team(store, dialect, "refused")
    try:
        w = TraceWriter(store, spill_dir=tmp_path / "spill", batch_size=64,
                        flush_interval_s=0.02)
        await w.start()
        bad = make_trace(0, team="refused")
        others = [make_trace(1 + i, team=f"tenant-{i % 7}") for i in range(120)]
        for t in [*others[:60], bad, *others[60:]]:
            w.submit(t)
        await w.close()
    finally:
        await _drop_refusal(store, dialect)
    assert await count_traces(store) == 120  # every other tenant's trace
    assert w.rejected == 1 and w.undrained == 0
    rejected = list((tmp_path / "spill").glob("rejected-*.jsonl"))
    assert len(rejected) == 1
    kept = [orjson.loads(line) for line in rejected[0].read_bytes().splitlines()]
    assert [row[0][0] for row in kept] == [bad.id]  # set aside, not lost


async def test_rollups_count_each_trace_once_across_refusal_outage_and_retry(
        store: Store, tmp_path: Path, dialect: str) -> None:
    """A batch split after a refusal, then a store outage (its table gone) and retries
    with backoff: the rollups hold each stored trace exactly once."""
    await _refuse_team(store, dialect, "refused")
    w = TraceWriter(store, spill_dir=tmp_path / "spill", batch_size=16, flush_interval_s=0.02)
    await w.start()
    for i in range(40):
        w.submit(make_trace(i, team="refused" if i == 5 else "cx"))
    await w.flush()
    await _drop_refusal(store, dialect)
    async with store.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE traces RENAME TO traces_away")
    for i in range(40, 80):
        w.submit(make_trace(i))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if w.store_error:
            break
    assert w.store_error is not None
    async with store.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE traces_away RENAME TO traces")
    await w.close()
    assert w.undrained == 0
    assert await count_traces(store) == 79
    async with store.connect() as conn:
        for granularity in ("m", "h", "d"):
            n = (await conn.execute(sa.text(
                "SELECT SUM(requests) FROM rollups WHERE granularity = :g"),
                {"g": granularity})).scalar_one()
            assert int(n) == 79, granularity


async def test_writer_loop_failure_is_logged_counted_and_restarted(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    w = TraceWriter(store, spill_dir=tmp_path / "spill", batch_size=10, flush_interval_s=0.01)
    failures = {"left": 1}
    original = Journal.rotate_if_dirty

    def fails_once(self: Journal) -> None:  # a bug in a collaborator, once
        # Only this writer's journal: another test's writer still winding down in the same
        # event loop must not take the one failure.
        if self is w.journal and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("journal bookkeeping bug")
        original(self)

    monkeypatch.setattr(Journal, "rotate_if_dirty", fails_once)
    caplog.set_level(logging.ERROR, logger="keel.telemetry")
    await w.start()
    for i in range(5):
        w.submit(make_trace(i))
    for _ in range(3000):  # the idle pass runs within a few flush intervals (a busy CI: 30 s)
        await asyncio.sleep(0.01)
        if w.restarts:
            break
    assert w.restarts == 1
    assert "restarting" in caplog.text and "journal bookkeeping bug" in caplog.text
    for i in range(5, 105):  # and it keeps storing
        w.submit(make_trace(i))
    await w.close()
    assert await count_traces(store) == 105
    assert w.health()["restarts"] == 1


async def test_store_outage_keeps_traces_and_resumes_without_a_restart(
        tmp_path: Path) -> None:
    """The store is missing its tables (as good as down): traces wait in the journal and
    in memory; once the store works, the same writer stores them all."""
    store = Store(f"sqlite:///{tmp_path / 'keel.db'}")
    w = TraceWriter(store, spill_dir=tmp_path / "spill", max_queue=20, batch_size=10,
                    flush_interval_s=0.01)
    await w.start()
    for i in range(100):
        w.submit(make_trace(i))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if w.store_error:
            break
    health = w.health()
    assert health["state"] == "degraded" and "store_error" in health
    assert health["waiting_on_disk"] == 80  # 20 queued in memory, the rest on disk only
    await store.upgrade()  # the store is back
    for _ in range(1000):
        await asyncio.sleep(0.01)
        if await count_traces(store) == 100:
            break
    assert await count_traces(store) == 100
    assert w.health()["state"] == "ok"
    await w.close()
    assert w.undrained == 0
    assert not list((tmp_path / "spill").glob("journal-*.jsonl"))
    await store.aclose()


async def test_close_with_the_store_down_reports_what_it_could_not_store(
        tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'keel.db'}")
    w = TraceWriter(store, spill_dir=tmp_path / "spill", batch_size=10, flush_interval_s=0.01)
    await w.start()
    for i in range(30):
        w.submit(make_trace(i))
    await w.close()
    assert w.undrained == 30
    assert list((tmp_path / "spill").glob("journal-*.jsonl"))
    await store.upgrade()
    w2 = TraceWriter(store, spill_dir=tmp_path / "spill")
    await w2.start()
    await w2.close()
    assert await count_traces(store) == 30 and w2.undrained == 0
    async with store.connect() as conn:
        ids = {r[0] for r in (await conn.execute(sa.select(traces.c.id))).all()}
    assert len(ids) == 30
    await store.aclose()


async def test_with_store_and_journal_both_refusing_traces_are_held_then_stored(
        tmp_path: Path) -> None:
    """No journal (its directory cannot be created) and no store: traces are held in
    memory up to hold_max, then the writer stops accepting; once the store is back,
    everything held is stored and it accepts again."""
    (tmp_path / "not-a-dir").write_text("a file where the spill directory should be")
    store = Store(f"sqlite:///{tmp_path / 'keel.db'}")
    w = TraceWriter(store, spill_dir=tmp_path / "not-a-dir" / "spill", max_queue=5,
                    batch_size=5, flush_interval_s=0.01, hold_max=10)
    await w.start()
    assert "journal_error" in w.health()
    for i in range(10):
        w.submit(make_trace(i))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if w.store_error:
            break
    for i in range(10, 40):
        w.submit(make_trace(i))
    assert not w.accepting and w.health()["accepting"] is False
    assert w.lost > 0  # counted, and the gateway refuses new requests from here on
    kept = 40 - w.lost
    await store.upgrade()
    for _ in range(500):
        await asyncio.sleep(0.01)
        if await count_traces(store) == kept:
            break
    assert await count_traces(store) == kept
    assert w.accepting
    await w.close()
    await store.aclose()


async def test_a_trace_larger_than_a_journal_segment_gets_its_own_and_is_stored(
        store: Store, tmp_path: Path) -> None:
    from keel.telemetry.journal import SEGMENT_BYTES

    w = TraceWriter(store, spill_dir=tmp_path / "spill", max_queue=1, batch_size=10,
                    flush_interval_s=0.01)
    await w.start()
    big = make_trace(0)
    big.response_body = {"text": "x" * (SEGMENT_BYTES + 1000)}
    small = [make_trace(1 + i) for i in range(5)]
    for t in [small[0], big, *small[1:]]:  # the queue holds one: the rest wait on disk
        w.submit(t)
    assert w.spilled >= 4
    await w.close()
    stored = await get_trace(store, big.id)
    assert stored is not None and len(stored["response"]["text"]) == SEGMENT_BYTES + 1000
    assert await count_traces(store) == 6 and w.undrained == 0
    assert not list((tmp_path / "spill").glob("journal-*.jsonl"))
