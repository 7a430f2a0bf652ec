"""The background trace writer: a non-blocking enqueue on the hot path, batched inserts.

What it guarantees, and how:

- **Answered means recorded, even across a crash.** ``submit`` (called before the last
  byte of an answer is sent) turns the trace into its row once, appends it to the
  process's journal (``keel.telemetry.journal``: a copy into a mapped segment, no fsync)
  and queues it. Whatever the process does next — SIGKILL, OOM kill — the next start (or
  another replica sharing the data directory) replays the journal; inserts are idempotent,
  so a trace is stored once.
- **Bounded memory, never a silent drop.** The queue is bounded; a trace that finds it
  full stays on disk only and is replayed from its journal segment. If the disk refuses
  the journal too (full, read-only), traces are held in memory up to ``hold_max``; past
  that ``accepting`` turns false and the gateway refuses new requests with a 503 rather
  than answer what it cannot record.
- **No row can poison a batch.** Every value is fitted to its column when the row is
  built (``keel.store.clean``). If the store still refuses a batch for its data, the batch
  is split to isolate the row; that row is stored again with its content replaced by a
  marked safe form, and only if even that is refused is it set aside in a
  ``rejected-*.jsonl`` file (counted, logged with its trace id).
- **The writer never dies.** A store outage is retried with backoff (the batch kept in
  memory, everything newer on disk); an unexpected exception is logged with the trace
  ids in hand, counted (``restarts``) and the loop starts again with the same batch.

``close`` drains the queue; what it could not store (the store down) stays in the journal
for the next start, and ``undrained`` says how many, so ``keel serve`` can exit non-zero.

The event loop that serves requests is never held for long by the writer: its heavy work
runs in one worker thread (``keel.telemetry.offload``), a slice at a time — a batch's
rollup deltas (started while its transaction begins), reading and parsing journal files to
replay, rebuilding replayed traces to hand on, freeing a stored batch, and the journal's
file work (the next segment allocated ahead, closed segments cut and removed). On the loop
stay the bookkeeping of each batch and, in ``submit``, each trace's row and journal line:
the journal must hold it before the answer's last byte leaves.

Every trace in memory on its way to the store (queued, in the batch being written, held) can
be looked up by id (``unstored_row``) and waited for (``landing``), so a request about a
trace answered a moment ago never needs ``flush`` (a full drain). Traces that overflowed to
the journal only are not in that index (it would grow without bound); they are in the store
once their segment is replayed.

``TraceWriter``, here, is the writer's loop and its public face: it takes batches off the
queue by size and time, retries a store outage with backoff, restarts itself after a bug,
does the idle work (replay, journal upkeep), drains on ``close`` and reports ``health``.
The rest is one concern a module, all of them used through it:

- ``keel.telemetry.intake`` (``TraceIntake``, which ``TraceWriter`` extends): ``submit``,
  the bounded queue, the in-memory hold and ``accepting``; the index of unstored traces
  (``unstored_row``, ``landing``).
- ``keel.telemetry.storing`` (``BatchInserter``): one batch in one transaction, the row
  the store refuses isolated, ``store_error`` while it is unavailable, stored batches
  counted and handed on (``on_stored``, ``on_stored_rows``).
- ``keel.telemetry.replay`` (``Replayer``): journal segments, dead processes' journals and
  old spill files, stored as replays.
- ``keel.telemetry.rows``: a trace's row and its forms (``Entry``, the journal header, the
  stored form, the trace rebuilt); ``keel.telemetry.journal`` and
  ``keel.telemetry.offload`` below them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keel.backoff import Backoff
from keel.store import Store
from keel.telemetry.intake import TraceIntake
from keel.telemetry.journal import Journal
from keel.telemetry.offload import CpuWorker, let_go
from keel.telemetry.replay import Replayer
from keel.telemetry.rows import JOURNAL_HEADER, Entry, Row
from keel.telemetry.storing import BatchInserter
from keel.types import Trace

log = logging.getLogger("keel.telemetry")

ORPHAN_SCAN_S = 10.0
MAX_BACKOFF_S = 5.0
# waits after consecutive failures (of the store, or of the loop itself): 0.05 s doubling
RETRY = Backoff(base=0.05, cap=MAX_BACKOFF_S)


class TraceWriter(TraceIntake):
    """Takes traces on the hot path (``submit``), stores them in batches in the background."""

    def __init__(
        self,
        store: Store,
        *,
        spill_dir: str | os.PathLike[str],
        max_queue: int = 20_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.25,
        hold_max: int = 20_000,
        journal: bool = True,
        journal_fsync_s: float | None = None,
    ) -> None:
        self.store = store
        self.spill_dir = Path(spill_dir)
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.use_journal = journal
        self._cpu = CpuWorker("keel-trace-writer")
        super().__init__(Journal(self.spill_dir, header=JOURNAL_HEADER,
                                 fsync_interval_s=journal_fsync_s, offload=self._cpu.submit),
                         max_queue=max_queue, hold_max=hold_max)
        self._retry: list[Entry] = []  # taken from the queue, not stored yet
        self._in_hand: list[Entry] = []
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._stop = asyncio.Event()
        self._busy = asyncio.Lock()  # held while a batch is taken and written
        self._last_orphan_scan = 0.0
        self._inserter = BatchInserter(store, spill_dir=self.spill_dir, journal=self.journal,
                                       cpu=self._cpu, landed=self._landed)
        self._replayer = Replayer(self.journal, spill_dir=self.spill_dir, cpu=self._cpu,
                                  inserter=self._inserter, batch_size=batch_size)
        self.restarts = 0
        self.undrained = 0  # after close: traces left for the next start (or lost)

    # --- the store side (``BatchInserter``) --------------------------------------------------

    @property
    def written(self) -> int:
        return self._inserter.written

    @property
    def failed_batches(self) -> int:
        """Batches the store refused (outage or data)."""
        return self._inserter.failed_batches

    @property
    def rejected(self) -> int:
        """Rows set aside in rejected-*.jsonl after every attempt failed."""
        return self._inserter.rejected

    @property
    def store_error(self) -> str | None:
        """The last store failure, until a write works."""
        return self._inserter.store_error

    @property
    def store_error_since(self) -> float | None:
        return self._inserter.store_error_since

    @property
    def on_stored(self) -> Callable[[list[Trace]], None] | None:
        """Called with the traces of each batch once stored (the OTLP exporter's submit)."""
        return self._inserter.on_stored

    @on_stored.setter
    def on_stored(self, fn: Callable[[list[Trace]], None] | None) -> None:
        self._inserter.on_stored = fn

    @property
    def on_stored_rows(self) -> Callable[[list[Row]], None] | None:
        """Called with the rows of each batch once stored (the audit log's batch digests)."""
        return self._inserter.on_stored_rows

    @on_stored_rows.setter
    def on_stored_rows(self, fn: Callable[[list[Row]], None] | None) -> None:
        self._inserter.on_stored_rows = fn

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            if self.use_journal:
                self.journal.open()
        except OSError as exc:  # a read-only data directory: run on memory alone
            log.error("cannot open the trace journal in %s (%s); traces are not crash-safe "
                      "until it is writable", self.spill_dir, exc)
        await self._replayer.replay_legacy_spills()
        await self._replayer.replay_orphans()
        self._task = asyncio.create_task(self._supervise(), name="keel-trace-writer")

    async def close(self) -> None:
        """Drain everything the store will take, then stop."""
        self._closing = True
        self._stop.set()
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()
        await self._cpu.run(_nothing)  # the journal's file work given to it so far is done
        self._cpu.close()
        left = [*self._retry, *_queued(self._queue), *self._held]  # in memory, unstored
        journaled = sum(s.overflowed for s in self.journal.segments) + sum(
            1 for e in left if e.segment is not None)
        self.undrained = sum(s.overflowed for s in self.journal.segments) + len(left) \
            + self.lost
        self.journal.close(keep=True)
        for event in self._landing.values():  # nothing lands any more: waiters decide now
            event.set()
        self._landing.clear()
        if self.undrained:
            log.error("trace writer stopped with %d traces not stored (%s); %d of them are "
                      "in the journal under %s and will be stored on the next start",
                      self.undrained, self.store_error or "the store refused them",
                      journaled, self.spill_dir)

    @property
    def pending(self) -> int:
        return self._queue.qsize() + len(self._retry) + len(self._held)

    def health(self) -> dict[str, Any]:
        """What /ready and /metrics report about the trace path."""
        waiting_on_disk = sum(s.overflowed for s in self.journal.segments)
        if self.journal.current is not None:
            waiting_on_disk += self.journal.current.overflowed
        draining = self.store_error is None
        out: dict[str, Any] = {
            "state": "ok" if draining and not self.journal.failing else "degraded",
            "queued": self._queue.qsize(), "held_in_memory": len(self._held),
            "waiting_on_disk": waiting_on_disk, "restarts": self.restarts,
            "rejected": self.rejected, "lost": self.lost, "accepting": self.accepting,
        }
        if not draining:
            out["store_error"] = self.store_error
            out["not_draining_for_s"] = round(time.time() - (self.store_error_since or 0), 1)
        if self.journal.failing:
            out["journal_error"] = self.journal.failing
        if self.use_journal and not self.journal.owner:
            out["journal_error"] = out.get("journal_error") or "journal not open"
        return out

    async def flush(self) -> None:
        """Write everything submitted so far (tests, and close). Never from a request: it waits
        for the batch being filled and drains the whole queue; a request about one trace
        uses ``unstored_row`` or ``landing``."""
        async with self._busy:
            await self._drain()
            self.journal.rotate_if_dirty()
            await self._replayer.replay_own()

    # --- the loop ----------------------------------------------------------------------------

    async def _supervise(self) -> None:
        failures = 0
        while True:
            try:
                await self._run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.restarts += 1
                ids = ", ".join(str(e.values[0]) for e in self._in_hand[:5]) or "none"
                log.exception("the trace writer failed (restart %d; traces in hand: %s); "
                              "restarting it", self.restarts, ids)
                # The batch in hand goes back first; nothing was lost.
                self._retry = self._in_hand + [e for e in self._retry
                                               if e not in self._in_hand]
                self._in_hand = []
                await self._pause(RETRY.delay(failures))
                failures += 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0  # store outages in a row
        while not self._closing:
            if self._retry or self._held:
                async with self._busy:
                    ok = await self._write_pending()
                if not ok:
                    await self._pause(RETRY.delay(failures))
                    failures += 1
                    continue
                failures = 0
            if self._queue.empty():
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self.flush_interval_s)
                except TimeoutError:
                    async with self._busy:
                        await self._idle()
                    continue
            # Items leave the queue only while _busy is held, so flush() sees them all.
            async with self._busy:
                batch: list[Entry] = []
                deadline = loop.time() + self.flush_interval_s
                while len(batch) < self.batch_size:
                    try:
                        batch.append(self._queue.get_nowait())
                    except asyncio.QueueEmpty:
                        if not batch or loop.time() >= deadline or self._closing:
                            break
                        await asyncio.sleep(0.005)
                if batch:
                    self._retry.extend(batch)
                    ok = await self._write_pending()
            if batch and not ok:
                await self._pause(RETRY.delay(failures))
                failures += 1
            elif batch:
                failures = 0
                self._cpu.submit(let_go, batch)  # the last references: freed off the loop
                self.journal.settle()  # stored segments go at once, busy or not
                if time.monotonic() - self._last_orphan_scan >= ORPHAN_SCAN_S:
                    # Under sustained load the queue never empties: do the idle work on
                    # a timer too, so what waits on disk is not left there.
                    async with self._busy:
                        await self._catch_up()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _idle(self) -> None:
        """Nothing queued: replay what waits on disk, tidy the journal."""
        if self.use_journal and not self.journal.owner:
            with contextlib.suppress(OSError, RuntimeError):
                self.journal.open()  # its directory may be writable by now
        self.journal.probe()
        if time.monotonic() - self._last_orphan_scan >= ORPHAN_SCAN_S:
            await self._catch_up()
        else:
            self.journal.rotate_if_dirty()
            await self._replayer.replay_own()
        self.journal.settle()
        self.journal.truncate_if_settled()

    async def _catch_up(self) -> None:
        """Replay this process's segments that wait on disk, and dead processes' journals."""
        self._last_orphan_scan = time.monotonic()
        self.journal.rotate_if_dirty()
        await self._replayer.replay_own()
        await self._replayer.replay_orphans()

    async def _drain(self) -> None:
        """Write the queue out; stop at the first store outage (what is left stays queued,
        and journaled)."""
        if not await self._write_pending():
            return
        while not self._queue.empty():
            batch: list[Entry] = []
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._retry.extend(batch)
            if not await self._write_pending():
                return

    async def _write_pending(self) -> bool:
        """Store the retry list (and what is held in memory) in batches; False when the
        store is unavailable (the rest stays in ``_retry``)."""
        while self._held and len(self._retry) < self.batch_size:
            self._retry.append(self._held.popleft())
        while self._retry:
            batch = self._retry[:self.batch_size]
            self._in_hand = batch
            # After a failure, a batch may have been committed without keel hearing so:
            # retry as a replay (stored rows skipped, never rolled up twice).
            left = await self._inserter.insert(batch, replay=self.store_error is not None)
            self._in_hand = []
            if left:
                self._retry = left + self._retry[len(batch):]
                return False
            del self._retry[:len(batch)]
            while self._held and len(self._retry) < self.batch_size:
                self._retry.append(self._held.popleft())
        return True


def _queued(q: asyncio.Queue[Entry]) -> list[Entry]:
    return list(q._queue)  # type: ignore[attr-defined]


def _nothing() -> None:
    pass
