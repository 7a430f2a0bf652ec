"""The trace path's CPU work off the event loop: the worker thread, its slices, and what the
writer and the audit digest hand it (with the same results as computing them in place)."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from keel.audit.digest import TraceDigest, batch_digest
from keel.audit.log import AuditLog
from keel.store import Store, rollups
from keel.store.traces import TRACE_COLUMNS, count_traces, insert_rows, trace_values
from keel.telemetry import replay as replay_module
from keel.telemetry import storing
from keel.telemetry.journal import SEGMENT_BYTES, Journal
from keel.telemetry.offload import CpuWorker, outcome, slices
from keel.telemetry.writer import TraceWriter
from tests.store.test_store import make_trace


def test_slices_give_every_item_once_in_order_in_bounded_pieces() -> None:
    items = list(range(100))
    parts = list(slices(items, 32))
    assert [len(p) for p in parts] == [32, 32, 32, 4]
    assert [x for p in parts for x in p] == items
    assert list(slices([], 32)) == []


async def test_the_worker_runs_in_order_in_one_thread_of_its_own() -> None:
    worker = CpuWorker("keel-test-worker")
    seen: list[tuple[int, str]] = []

    def job(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i * i

    futures = [worker.submit(job, i) for i in range(20)]
    assert await worker.run(job, 20) == 400
    assert [f.result() for f in futures] == [i * i for i in range(20)]
    assert [i for i, _ in seen] == list(range(21))
    names = {name for _, name in seen}
    assert len(names) == 1 and names != {threading.current_thread().name}
    worker.close()
    assert await worker.run(job, 3) == 9  # a use after close starts a new thread
    worker.close()


async def test_a_cancelled_waiter_leaves_the_work_and_its_result_intact() -> None:
    worker = CpuWorker("keel-test-worker")
    release = threading.Event()

    def slow() -> str:
        release.wait(10)
        return "done"

    future = worker.submit(slow)
    waiter = asyncio.ensure_future(outcome(future))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    assert await outcome(future) == "done"  # awaited again, by the next flush
    worker.close()


def _random_rows(n: int, seed: int) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        t = make_trace(i, feature=rng.choice(["a", "b", "c"]), team=rng.choice(["x", "y"]),
                       status=rng.choice([200, 200, 200, 429, 500]))
        t.start_time = 1.7e9 + rng.uniform(0, 2 * 86400)
        t.latency_ms = rng.uniform(1, 5000)
        t.ttft_ms = rng.choice([None, rng.uniform(1, 900)])
        if t.status >= 400:
            t.error_type = rng.choice(["timeout", "rate_limit", None])
        rows.append(trace_values(t))
    return rows


def test_rollup_rows_are_in_whole_key_order_and_add_up_every_trace() -> None:
    """Each table's rows are sorted by their whole tuple (the one global lock order), and
    the counts add up to the traces once per granularity."""
    rows = _random_rows(400, seed=2)
    d = rollups.trace_deltas(dict(zip(TRACE_COLUMNS, r, strict=True)) for r in rows)
    counters, errors, sketches, _ = d.rows()
    for table in (counters, errors, sketches):
        assert table == sorted(table)
    keys = [row[:len(rollups.KEY)] for row in counters]
    assert len(keys) == len(set(keys))
    requests = rollups.KEY.__len__() + rollups.COUNTERS.index("requests")
    for g in rollups.GRANULARITIES:
        assert sum(r[requests] for r in counters if r[0] == g) == 400
        ok = sum(1 for r in rows if r[TRACE_COLUMNS.index("status")] < 400)
        assert sum(r[-1] for r in sketches if r[0] == g and r[-3] == "latency") == ok
    assert d.rows() is d.rows()  # built once


async def _daily_requests(store: Store) -> int:
    async with store.connect() as conn:
        total = (await conn.execute(sa.text(
            "SELECT SUM(requests) FROM rollups WHERE granularity = 'd'"))).scalar_one()
    return int(total or 0)


async def test_a_replay_asks_for_the_deltas_of_the_rows_it_inserts_only(
        store: Store) -> None:
    rows = _random_rows(30, seed=4)
    await insert_rows(store, rows[:10], [])
    asked: list[list[Any]] = []

    async def deltas_of(inserted: list[tuple[Any, ...]]) -> rollups.Deltas:
        asked.append([r[0] for r in inserted])
        return storing._deltas_of(inserted)

    skipped = await insert_rows(store, rows, [], replay=True, deltas=deltas_of)
    assert skipped == {r[0] for r in rows[:10]}
    assert asked == [[r[0] for r in rows[10:]]]
    assert await _daily_requests(store) == 30 and await count_traces(store) == 30


async def test_the_writer_computes_deltas_and_parses_replays_off_the_loop_thread(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.current_thread().name
    threads: dict[str, set[str]] = {"deltas": set(), "replay": set()}
    add_trace, entry_of = rollups.Deltas.add_trace, replay_module._entry_of

    def spy_add(self: rollups.Deltas, row: dict[str, Any]) -> None:
        threads["deltas"].add(threading.current_thread().name)
        add_trace(self, row)

    def spy_entry(item: Any, columns: tuple[str, ...]) -> Any:
        threads["replay"].add(threading.current_thread().name)
        return entry_of(item, columns)

    monkeypatch.setattr(rollups.Deltas, "add_trace", spy_add)
    monkeypatch.setattr(replay_module, "_entry_of", spy_entry)
    w = TraceWriter(store, spill_dir=tmp_path / "spill", max_queue=20, batch_size=16,
                    flush_interval_s=0.01)
    await w.start()
    for i in range(120):  # no await in between: 100 of them overflow to the journal
        w.submit(make_trace(i))
    assert w.spilled == 100
    await w.close()
    assert await count_traces(store) == 120 and w.undrained == 0
    # the segment replayed held the 20 traces stored from the queue too: counted once
    assert await _daily_requests(store) == 120
    assert threads["deltas"] and loop_thread not in threads["deltas"]
    assert threads["replay"] and loop_thread not in threads["replay"]


async def test_a_batch_that_cannot_be_hashed_is_logged_and_the_others_recorded(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    digest = TraceDigest()
    good = [(trace_values(make_trace(i)), None) for i in range(3)]
    digest.observe(good)
    digest.observe([((f"{1:032x}", object()), None)])  # a value orjson cannot write
    assert digest.pending == 2
    audit = AuditLog(store)
    caplog.set_level(logging.ERROR, logger="keel.audit")
    await digest.flush(audit)
    assert "digesting 1 stored traces failed" in caplog.text
    entries, _ = await audit.entries(action="traces.stored")
    assert len(entries) == 1 and digest.pending == 0
    assert entries[0]["detail"]["batches"] == [[3, batch_digest([v for v, _ in good])]]


def _journal_files(directory: Path) -> list[Path]:
    return list(directory.glob("journal-*"))


def _lines_on_disk(directory: Path) -> list[bytes]:
    out: list[bytes] = []
    for path in sorted(directory.glob("journal-*.jsonl")):
        data = path.read_bytes()
        end = data.find(b"\x00")
        out.extend(line for line in (data if end < 0 else data[:end]).splitlines()
                   if line and not line.startswith(b'{"h"'))
    return out


async def test_journal_segments_allocated_ahead_hold_every_line_and_leave_nothing_behind(
        tmp_path: Path) -> None:
    worker = CpuWorker("keel-test-journal")
    jobs: list[str] = []

    def offload(job: Any) -> object:
        jobs.append(threading.current_thread().name)
        return worker.submit(job)

    journal = Journal(tmp_path, header=b'{"h":1}\n', segment_rows=100, offload=offload)
    journal.open()
    lines = [b'{"n":%d}\n' % i for i in range(1000)]
    big = b'{"big":"' + b"x" * (SEGMENT_BYTES + 10) + b'"}\n'  # larger than any spare
    for i, line in enumerate(lines):
        assert journal.append(line) is not None
        if i == 500:
            assert journal.append(big) is not None
        if i % 100 == 0:
            await worker.run(lambda: None)  # let the next segment be allocated meanwhile
    await worker.run(lambda: None)
    assert jobs  # allocations, cuts and removals went to the offload
    on_disk = _lines_on_disk(tmp_path)
    assert sorted(on_disk) == sorted([line.rstrip(b"\n") for line in [*lines, big]])
    for seg in journal.segments:  # every closed segment was cut to what it holds
        assert seg.path.stat().st_size < SEGMENT_BYTES or seg.appended == 1
    journal.close(keep=False)
    await worker.run(lambda: None)
    assert not _journal_files(tmp_path), "segments, spare and lock all removed"
    worker.close()
