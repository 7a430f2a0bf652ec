"""The trace writer's intake: the hot path's handover, bounded memory and back-pressure.

``submit`` is what the gateway calls for each answered request, before the answer's last
byte is sent. It turns the trace into its row once (``rows.row_of``), appends that row to
the process's journal (a copy into a mapped segment, no fsync) and puts the entry on a
bounded queue: no I/O, no await, no lock. A trace that finds the queue full stays on disk
only and is replayed from its journal segment (``spilled``). If the disk refuses the
journal too (full, read-only), the entry is held in memory up to ``hold_max``; past that it
is counted ``lost`` and ``accepting`` turns false, so the gateway refuses new requests
with a 503 rather than answer what it cannot record.

Every entry in memory on its way to the store (queued, in the batch being written, held) is
indexed by trace id: ``unstored_row`` reads one back as the store will return it, and
``landing`` gives an event set once it leaves memory (``_landed``, called by the store side
for each trace stored or set aside). Entries that overflowed to the journal only are not in
the index (it would grow without bound). Draining the queue and the hold is the writer's
loop (``keel.telemetry.writer``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import orjson

from keel.telemetry.journal import Journal
from keel.telemetry.rows import Entry, bare_row, row_of, stored_form
from keel.types import Trace

log = logging.getLogger("keel.telemetry")


class TraceIntake:
    """Where traces enter the writer: the queue, the in-memory hold and the unstored index."""

    def __init__(self, journal: Journal, *, max_queue: int, hold_max: int) -> None:
        self.journal = journal
        self.hold_max = hold_max
        self._queue: asyncio.Queue[Entry] = asyncio.Queue(maxsize=max_queue)
        self._held: deque[Entry] = deque()  # neither queued nor journaled (disk refused)
        # Every trace in memory and not stored yet, by id (queued, in the batch being
        # written, held).
        self._unstored: dict[str, Entry] = {}
        self._landing: dict[str, asyncio.Event] = {}  # set when that trace leaves memory
        self._wakeup = asyncio.Event()  # set when the queue has something for the loop
        self.submitted = 0
        self.spilled = 0  # traces that found the queue full and waited on disk only
        self.lost = 0  # traces neither journaled nor held (memory bound reached)

    # --- hot path ----------------------------------------------------------------------------

    def submit(self, trace: Trace) -> None:
        self.submitted += 1
        try:
            values, payload = row_of(trace)
        except Exception:  # a bug in building the row: keep the numbers, drop the content
            log.exception("building the row of trace %s failed; storing it without content",
                          trace.id)
            values, payload = bare_row(trace), None
        seg = None
        if self.journal.owner:
            try:
                line = orjson.dumps([values, payload]) + b"\n"
            except (TypeError, orjson.JSONEncodeError):  # a value no column fitter knew
                log.exception("journaling trace %s failed; it is kept in memory", trace.id)
            else:
                seg = self.journal.append(line)
        entry = Entry(values, payload, trace, seg)
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            if seg is not None:
                seg.overflowed += 1  # on disk only: replayed from the segment
                self.spilled += 1
            elif len(self._held) < self.hold_max:
                self._held.append(entry)
                self._unstored[values[0]] = entry
            else:
                self.lost += 1
                if self.lost == 1 or self.lost % 1000 == 0:
                    log.error("trace %s could not be kept (%d so far): the store, the "
                              "journal and the in-memory hold are all full", trace.id,
                              self.lost)
            return
        self._unstored[values[0]] = entry
        if not self._wakeup.is_set():
            self._wakeup.set()

    # --- lookups (never a flush) -------------------------------------------------------------

    def unstored_row(self, trace_id: str) -> dict[str, Any] | None:
        """The trace ``trace_id`` as ``store.traces.get_trace`` will return it once stored,
        while it is in memory on its way there; None if it is not (stored already, never
        submitted here, or waiting in the journal only). O(1), no I/O."""
        entry = self._unstored.get(trace_id)
        return None if entry is None else stored_form(entry)

    def landing(self, trace_id: str) -> asyncio.Event | None:
        """An event set once trace ``trace_id`` leaves memory (stored, or set aside as
        unstorable), or None when it is not in memory here. Waiting on it costs nothing
        and asks the writer for nothing: the trace lands with its batch."""
        if trace_id not in self._unstored:
            return None
        event = self._landing.get(trace_id)
        if event is None:
            event = self._landing[trace_id] = asyncio.Event()
        return event

    def _landed(self, trace_id: Any) -> None:
        self._unstored.pop(trace_id, None)
        if self._landing:
            event = self._landing.pop(trace_id, None)
            if event is not None:
                event.set()

    @property
    def accepting(self) -> bool:
        """False when a new trace could not be kept anywhere (store, journal and memory
        all refuse): the gateway then refuses requests instead of answering untraced."""
        return len(self._held) < self.hold_max
