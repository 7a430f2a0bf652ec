"""The trace writer's index of what it holds in memory: a trace submitted and not stored yet
is looked up by id as it will be stored, and its own event is set when its batch is stored
(or it is set aside), so nothing ever has to drain the writer to find one trace."""

from __future__ import annotations

import asyncio
from pathlib import Path

from keel.store import Store
from keel.store.traces import get_trace
from keel.telemetry.writer import TraceWriter
from keel.types import Trace, new_trace_id
from tests.store.test_store import make_trace
from tests.telemetry.test_writer_faults import _drop_refusal, _refuse_team

SLOW_S = 60.0  # a writer that waits this long to fill a batch: nothing lands by itself


def rich_trace() -> Trace:
    t = make_trace(7)
    t.tags = {"env": "prod", "ticket": 42}
    t.attempt_log = [{"deployment": "mock-a", "status": 500}, {"deployment": "mock-b"}]
    t.guard = {"input": [{"scanner": "pii", "score": 0.5}]}
    t.stream = True
    t.cache_hit = True
    t.prompt_name, t.prompt_version = "support-answer", 3
    t.ttft_ms = 12.5
    return t


async def test_an_unstored_trace_reads_exactly_as_the_store_will_return_it(
        store: Store, tmp_path: Path) -> None:
    w = TraceWriter(store, spill_dir=tmp_path / "spill", flush_interval_s=SLOW_S)
    await w.start()
    t = rich_trace()
    w.submit(t)
    await asyncio.sleep(0.05)  # the writer has taken it into a batch it is filling
    in_memory = w.unstored_row(t.id)
    assert in_memory is not None and await get_trace(store, t.id) is None
    assert w.unstored_row(new_trace_id()) is None
    await w.close()  # the batch being filled is written now
    stored = await get_trace(store, t.id)
    assert stored == in_memory
    assert w.unstored_row(t.id) is None  # stored: out of the index


async def test_a_trace_lands_with_its_batch_and_its_event_is_set_without_a_flush(
        store: Store, tmp_path: Path) -> None:
    w = TraceWriter(store, spill_dir=tmp_path / "spill", flush_interval_s=0.05)
    await w.start()
    t = make_trace(1)
    w.submit(t)
    landing = w.landing(t.id)
    assert landing is not None and not landing.is_set()
    assert w.landing(t.id) is landing  # one event per trace, however many wait
    await asyncio.wait_for(landing.wait(), timeout=30)
    assert await get_trace(store, t.id) is not None
    assert w.landing(t.id) is None and w.unstored_row(t.id) is None
    assert w.landing(new_trace_id()) is None  # never submitted here: nothing to wait for
    await w.close()


async def test_a_trace_the_store_refuses_wakes_its_waiters_and_leaves_the_index(
        store: Store, tmp_path: Path, dialect: str) -> None:
    await _refuse_team(store, dialect, "refused")
    try:
        w = TraceWriter(store, spill_dir=tmp_path / "spill", flush_interval_s=0.02)
        await w.start()
        bad = make_trace(0, team="refused")
        w.submit(bad)
        landing = w.landing(bad.id)
        assert landing is not None
        await asyncio.wait_for(landing.wait(), timeout=30)
        assert w.rejected == 1 and w.unstored_row(bad.id) is None
        await w.close()
    finally:
        await _drop_refusal(store, dialect)


async def test_traces_held_while_the_store_is_down_are_in_the_index(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'keel.db'}")  # not migrated: every insert fails
    w = TraceWriter(store, spill_dir=tmp_path / "spill", max_queue=2, batch_size=2,
                    flush_interval_s=0.01, journal=False)
    await w.start()
    traces = [make_trace(i) for i in range(6)]
    for t in traces:
        w.submit(t)
    assert w.lost == 0
    assert all(w.unstored_row(t.id) is not None for t in traces)  # queued or held
    landings = [w.landing(t.id) for t in traces]
    await store.upgrade()
    for event in landings:
        assert event is not None
        await asyncio.wait_for(event.wait(), timeout=30)
    for t in traces:
        assert await get_trace(store, t.id) is not None
    assert all(w.unstored_row(t.id) is None for t in traces)
    await w.close()
    await store.aclose()
