"""Storing a batch of traces: one transaction, no row able to poison it, outages reported.

``BatchInserter.insert`` stores a batch of entries in one transaction (``insert_rows``:
traces, payloads, and the batch's rollup deltas, computed in the writer's worker thread
while the transaction begins). Every value was fitted to its column when the row was built;
if the store still refuses a batch for its data, the batch is split until the row is
isolated, that row is stored again with its content replaced by a marked safe form, and
only if even that is refused is it set aside in ``rejected-<owner>.jsonl`` (counted,
logged with its trace id). A store that is unavailable (connection, disk, a missing table)
is not a refusal: the entries not stored are handed back for the writer to retry with
backoff, and ``store_error`` says why until a batch is stored again.

A stored batch is settled here: counted (``written``), each trace marked landed (through
the ``landed`` function the writer gives) and counted stored in its journal segment, then
handed on (``on_stored``, ``on_stored_rows``); their failures never affect the store.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import exc as sa_exc

from keel.store import Store
from keel.store.clean import clean_str, unstorable
from keel.store.rollups import Deltas
from keel.store.traces import TRACE_COLUMNS, insert_rows
from keel.telemetry.journal import Journal
from keel.telemetry.offload import CpuWorker, outcome, slices
from keel.telemetry.rows import JSON_COLUMNS, Entry, Row, trace_of
from keel.types import Trace

log = logging.getLogger("keel.telemetry")

_SOURCE = TRACE_COLUMNS.index("source")


class BatchInserter:
    """The store side of the trace writer: inserts its batches and settles what is stored."""

    def __init__(self, store: Store, *, spill_dir: Path, journal: Journal, cpu: CpuWorker,
                 landed: Callable[[Any], None]) -> None:
        self.store = store
        self.spill_dir = spill_dir
        self.journal = journal
        self._cpu = cpu
        self._landed = landed  # the writer's: the trace left memory
        self.written = 0
        self.failed_batches = 0  # batches the store refused (outage or data)
        self.rejected = 0  # rows set aside in rejected-*.jsonl after every attempt failed
        self.store_error: str | None = None  # the last store failure, until a write works
        self.store_error_since: float | None = None
        # Called with the traces of each batch once stored (the OTLP exporter's submit).
        self.on_stored: Callable[[list[Trace]], None] | None = None
        # Called with the rows of each batch once stored (the audit log's batch digests).
        self.on_stored_rows: Callable[[list[Row]], None] | None = None

    async def insert(self, entries: list[Entry], *, replay: bool) -> list[Entry]:
        """Store ``entries``; returns those not stored because the store is unavailable.
        A batch refused for its data is split until the offending row is isolated."""
        rows = [e.values for e in entries]
        payloads = [e.payload for e in entries if e.payload is not None]
        ahead = self._cpu.submit(_deltas_of, rows)  # while the transaction begins

        async def deltas_of(inserted: list[tuple[Any, ...]]) -> Deltas:
            if len(inserted) == len(rows):  # a replay skipped none: the whole batch
                return await outcome(ahead)
            return await self._cpu.run(_deltas_of, inserted)

        try:
            # Ingested OTLP spans may be re-sent: skip (and do not roll up) stored ones.
            skipped = await insert_rows(
                self.store, rows, payloads,
                replay=replay or any(r[_SOURCE] == "otlp" for r in rows), deltas=deltas_of)
        except Exception as exc:
            self.failed_batches += 1
            if not _is_data_error(exc):
                self._store_failed(exc, len(entries))
                return entries
            if len(entries) == 1:
                return await self._insert_safe(entries[0], exc, replay=replay)
            mid = len(entries) // 2
            left = await self.insert(entries[:mid], replay=replay)
            if left:
                return left + entries[mid:]
            return await self.insert(entries[mid:], replay=replay)
        if skipped:  # already stored (a replay): settled, but neither counted nor handed on
            for e in entries:
                if e.values[0] in skipped:
                    self._landed(e.values[0])
                    if e.segment is not None:
                        e.segment.stored += 1
            entries = [e for e in entries if e.values[0] not in skipped]
        await self._stored(entries)
        return []

    async def _insert_safe(self, entry: Entry, exc: Exception, *, replay: bool
                           ) -> list[Entry]:
        """The one row the store refused: again, with its content replaced by a marked safe
        form and its text reduced to ASCII; set aside if even that is refused."""
        tid = str(entry.values[0])
        log.warning("the store refused trace %s (%s); storing it without its content",
                    tid, _describe(exc))
        reason = f"the store refused this content ({type(exc).__name__})"
        values = tuple(
            None if i in JSON_COLUMNS else
            clean_str(v.encode("ascii", "backslashreplace").decode(), 256)
            if isinstance(v, str) and i else v for i, v in enumerate(entry.values))
        payload = None
        if entry.payload is not None:
            payload = (entry.payload[0],
                       unstorable(entry.payload[1], reason) if entry.payload[1] else None,
                       unstorable(entry.payload[2], reason) if entry.payload[2] else None)
        safe = Entry(values, payload, None, entry.segment)
        try:
            skipped = await insert_rows(self.store, [values], [payload] if payload else [],
                                        replay=True)
        except Exception as again:
            if not _is_data_error(again):
                self._store_failed(again, 1)
                return [entry]
            self._reject(entry, again)
            return []
        if skipped:
            self._landed(tid)
            if entry.segment is not None:
                entry.segment.stored += 1
            return []
        await self._stored([safe])
        return []

    def _reject(self, entry: Entry, exc: Exception) -> None:
        self.rejected += 1
        path = self.spill_dir / f"rejected-{self.journal.owner or os.getpid()}.jsonl"
        log.error("the store refused trace %s even without its content (%s); set aside in %s",
                  entry.values[0], _describe(exc), path)
        try:
            with open(path, "ab") as fh:
                fh.write(orjson.dumps([entry.values, entry.payload],
                                      default=str) + b"\n")
        except (OSError, TypeError, orjson.JSONEncodeError):
            log.exception("could not set trace %s aside", entry.values[0])
        self._landed(entry.values[0])
        if entry.segment is not None:
            entry.segment.stored += 1

    def _store_failed(self, exc: Exception, n: int) -> None:
        if self.store_error is None:
            self.store_error_since = time.time()
            log.error("the store refused a batch of %d traces (%s); keeping them and "
                      "retrying with backoff", n, _describe(exc))
        self.store_error = _describe(exc)

    async def _stored(self, entries: list[Entry]) -> None:
        """Count a stored batch, settle its journal segments and hand it on
        (``on_stored``, ``on_stored_rows``, both called on the loop); their failures never
        affect the store. Replayed traces are rebuilt from their rows in the worker."""
        if self.store_error is not None:
            log.warning("the store accepts traces again (after %.1f s)",
                        time.time() - (self.store_error_since or time.time()))
            self.store_error = self.store_error_since = None
        self.written += len(entries)
        for e in entries:
            self._landed(e.values[0])
            if e.segment is not None:
                e.segment.stored += 1
        batch: list[Row] = [(e.values, e.payload) for e in entries]
        if self.on_stored_rows is not None:
            try:
                self.on_stored_rows(batch)
            except Exception:
                log.exception("digesting %d stored traces failed", len(batch))
        if self.on_stored is None:
            return
        try:
            missing = [r for e, r in zip(entries, batch, strict=True) if e.trace is None]
            rebuilt = iter(await self._cpu.run(_traces_of, missing) if missing else ())
            self.on_stored([e.trace if e.trace is not None else next(rebuilt)
                            for e in entries])
        except Exception:
            log.exception("handing on %d stored traces failed", len(batch))


def _deltas_of(rows: Sequence[tuple[Any, ...]]) -> Deltas:
    """The rollup deltas of a batch, folded and ordered for ``rollups.apply``. (In the
    worker.)"""
    deltas = Deltas()
    for part in slices(rows):
        for values in part:
            deltas.add_trace(dict(zip(TRACE_COLUMNS, values, strict=True)))
    deltas.rows()
    return deltas


def _traces_of(rows: Sequence[Row]) -> list[Trace]:
    """Traces rebuilt from their rows, to hand on. (In the worker.)"""
    return [trace_of(*row) for part in slices(rows) for row in part]


def _is_data_error(exc: BaseException) -> bool:
    """The store refused this data (a value, a constraint), as opposed to being
    unavailable (connection, disk full, read-only, missing table)."""
    if isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError):
        return True
    if isinstance(exc, sa_exc.StatementError) and not isinstance(exc, sa_exc.DBAPIError):
        return isinstance(exc.orig, TypeError | ValueError | OverflowError)
    if isinstance(exc, sa_exc.DBAPIError):
        return False
    return isinstance(exc, TypeError | ValueError | OverflowError)


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:300]}"
