"""The trace writer never loses a trace: batching, overflow spill, replay, drain on close."""

from __future__ import annotations

import asyncio
from pathlib import Path

from keel.store import Store
from keel.store.traces import count_traces
from keel.telemetry.writer import TraceWriter
from tests.store.test_store import make_trace


async def test_close_drains_everything_submitted(store: Store, tmp_path: Path) -> None:
    w = TraceWriter(store, spill_dir=tmp_path / "spill", batch_size=50, flush_interval_s=0.05)
    await w.start()
    for i in range(730):
        w.submit(make_trace(i))
    await w.close()
    assert await count_traces(store) == 730
    assert w.written == 730 and w.spilled == 0


async def test_overflow_spills_to_disk_and_is_replayed(store: Store, tmp_path: Path) -> None:
    w = TraceWriter(store, spill_dir=tmp_path / "spill", max_queue=10, batch_size=5,
                    flush_interval_s=0.05)
    await w.start()
    for i in range(200):  # no await in between: the queue overflows
        w.submit(make_trace(i))
    assert w.spilled == 190
    assert list((tmp_path / "spill").glob("journal-*.jsonl"))
    for _ in range(100):  # the writer replays the spill file once the queue drains
        await asyncio.sleep(0.05)
        if await count_traces(store) == 200:
            break
    assert await count_traces(store) == 200
    await w.close()
    assert not list((tmp_path / "spill").iterdir())


async def test_store_failure_keeps_traces_on_disk_for_next_start(tmp_path: Path) -> None:
    db = tmp_path / "keel.db"
    store = Store(f"sqlite:///{db}")
    # no migration: inserts fail because the table does not exist
    w = TraceWriter(store, spill_dir=tmp_path / "spill", batch_size=10, flush_interval_s=0.02)
    await w.start()
    for i in range(25):
        w.submit(make_trace(i))
    await w.close()
    assert w.failed_batches >= 1
    leftover = list((tmp_path / "spill").iterdir())
    assert leftover, "traces must stay on disk when the store rejects them"
    await store.upgrade()
    w2 = TraceWriter(store, spill_dir=tmp_path / "spill")
    await w2.start()  # replays what the previous process left
    await w2.close()
    assert await count_traces(store) == 25
    assert not list((tmp_path / "spill").iterdir())
    await store.aclose()


async def test_torn_spill_line_is_skipped_not_fatal(store: Store, tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    w = TraceWriter(store, spill_dir=spill, max_queue=1)
    await w.start()
    for i in range(3):
        w.submit(make_trace(i))
    await w.close()
    (spill / "traces-spill-999.jsonl").write_bytes(b'{"row": {"id": "tor')
    w2 = TraceWriter(store, spill_dir=spill)
    await w2.start()
    await w2.close()
    assert await count_traces(store) == 3
