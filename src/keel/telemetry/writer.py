"""The background trace writer: a non-blocking enqueue on the hot path, batched inserts.

``submit`` never blocks and never drops. The in-memory queue is bounded; when it is
full, the trace is appended to a spill file on local disk (one JSON line per trace),
which the writer replays once the queue has drained. Spill files left behind by a crash
are replayed on start. Inserts are idempotent (``ON CONFLICT DO NOTHING``), so a
replay that overlaps an earlier partial write stores each trace once.

``close`` drains the queue and the spill file: after it returns, every submitted trace
is in the store (or, if the store is down, still in the spill file for the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from keel.store import Store
from keel.store.traces import (
    TRACE_COLUMNS,
    insert_rows,
    payload_values,
    trace_values,
)
from keel.types import Trace, Usage

log = logging.getLogger("keel.telemetry")

Row = tuple[tuple[Any, ...], tuple[Any, ...] | None]  # (trace values, payload values)


class TraceWriter:
    def __init__(
        self,
        store: Store,
        *,
        spill_dir: str | os.PathLike[str],
        max_queue: int = 20_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.25,
    ) -> None:
        self.store = store
        self.spill_dir = Path(spill_dir)
        self.spill_path = self.spill_dir / f"traces-spill-{os.getpid()}.jsonl"
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._queue: asyncio.Queue[Trace] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._spill_file: Any = None
        self._busy = asyncio.Lock()  # held while a batch is taken and written
        self._wakeup = asyncio.Event()
        self.submitted = 0
        self.written = 0
        self.spilled = 0
        self.failed_batches = 0
        # Called with the traces of each batch once stored (the OTLP exporter's submit).
        self.on_stored: Callable[[list[Trace]], None] | None = None
        # Called with the rows of each batch once stored (the audit log's batch digests).
        self.on_stored_rows: Callable[[list[Row]], None] | None = None

    # --- hot path ----------------------------------------------------------------------------

    def submit(self, trace: Trace) -> None:
        self.submitted += 1
        try:
            self._queue.put_nowait(trace)
        except asyncio.QueueFull:
            self._spill([_row(trace)])
            return
        if not self._wakeup.is_set():
            self._wakeup.set()

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        await self._replay_spills(include_own=True)
        self._task = asyncio.create_task(self._run(), name="keel-trace-writer")

    async def close(self) -> None:
        """Drain everything, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self._drain_queue()
        self._close_spill_file()
        await self._replay_spills(include_own=True)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def flush(self) -> None:
        """Write everything submitted so far (used by tests and the admin API)."""
        async with self._busy:
            await self._drain_queue()
        self._close_spill_file()
        await self._replay_spills(include_own=True)

    # --- internals ---------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            if self._queue.empty():
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self.flush_interval_s)
                except TimeoutError:
                    if self.spilled and self._queue.empty():
                        async with self._busy:
                            self._close_spill_file()
                            await self._replay_spills(include_own=True)
                    continue
            # Items leave the queue only while _busy is held, so flush() sees them all.
            async with self._busy:
                batch: list[Trace] = []
                deadline = loop.time() + self.flush_interval_s
                while len(batch) < self.batch_size:
                    try:
                        batch.append(self._queue.get_nowait())
                    except asyncio.QueueEmpty:
                        if batch and (loop.time() >= deadline or self._closing):
                            break
                        if not batch:
                            break
                        await asyncio.sleep(0.005)
                if batch:
                    await self._write([_row(t) for t in batch], batch)

    async def _drain_queue(self) -> None:
        while not self._queue.empty():
            traces: list[Trace] = []
            while len(traces) < self.batch_size and not self._queue.empty():
                traces.append(self._queue.get_nowait())
            await self._write([_row(t) for t in traces], traces)

    async def _write(self, batch: list[Row], traces: list[Trace] | None = None) -> None:
        rows = [r for r, _ in batch]
        payloads = [p for _, p in batch if p is not None]
        try:
            # Ingested OTLP spans may be re-sent: skip (and do not roll up) stored ones.
            await insert_rows(self.store, rows, payloads,
                              replay=any(r[_SOURCE] == "otlp" for r in rows))
            self.written += len(batch)
            self._stored(traces, batch)
        except Exception:
            # The store is unavailable or rejected the batch: keep the traces on disk and
            # replay them later rather than lose them.
            self.failed_batches += 1
            log.exception("trace batch of %d failed; spilled to %s", len(batch), self.spill_path)
            self._spill(batch)

    def _stored(self, traces: list[Trace] | None, batch: list[Row]) -> None:
        """Hand a stored batch on (``on_stored``, ``on_stored_rows``); their failures never
        affect the store."""
        if self.on_stored_rows is not None:
            try:
                self.on_stored_rows(batch)
            except Exception:
                log.exception("digesting %d stored traces failed", len(batch))
        if self.on_stored is None:
            return
        try:
            self.on_stored(traces if traces is not None else [_trace(r, p) for r, p in batch])
        except Exception:
            log.exception("handing on %d stored traces failed", len(batch))

    def _spill(self, rows: list[Row]) -> None:
        if self._spill_file is None:
            self.spill_dir.mkdir(parents=True, exist_ok=True)
            self._spill_file = open(self.spill_path, "ab")  # noqa: SIM115
        for values, payload in rows:
            # Spilled rows are keyed by column name, so a newer keel can replay them.
            item = {"row": dict(zip(TRACE_COLUMNS, values, strict=True)), "payload": payload}
            self._spill_file.write(orjson.dumps(item) + b"\n")
        self._spill_file.flush()
        self.spilled += len(rows)

    def _close_spill_file(self) -> None:
        if self._spill_file is not None:
            self._spill_file.close()
            self._spill_file = None

    async def _replay_spills(self, *, include_own: bool) -> None:
        for path in sorted(self.spill_dir.glob("traces-spill-*.jsonl")):
            if path == self.spill_path and (not include_own or self._spill_file is not None):
                continue
            replaying = path.with_suffix(".replaying")
            try:
                path.rename(replaying)
            except FileNotFoundError:
                continue  # another process took it
            await self._replay_file(replaying)
        for path in sorted(self.spill_dir.glob("traces-spill-*.replaying")):
            if path.exists():
                await self._replay_file(path)

    async def _replay_file(self, path: Path) -> None:
        batch: list[Row] = []
        ok = True
        # Blocking reads are fine here: a local file, off the request path, rare.
        with open(path, "rb") as fh:  # noqa: ASYNC230
            for line in fh:
                if not line.strip():
                    continue
                try:
                    item = orjson.loads(line)
                except orjson.JSONDecodeError:
                    log.warning("skipping a torn line in %s", path)
                    continue
                row = item["row"]
                payload = item["payload"]
                batch.append((tuple(row.get(c) for c in TRACE_COLUMNS),
                              tuple(payload) if payload else None))
                if len(batch) >= self.batch_size:
                    ok = await self._replay_batch(batch) and ok
                    batch = []
        if batch:
            ok = await self._replay_batch(batch) and ok
        if ok:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # noqa: ASYNC240

    async def _replay_batch(self, batch: list[Row]) -> bool:
        try:
            await insert_rows(self.store, [r for r, _ in batch],
                              [p for _, p in batch if p is not None], replay=True)
            self.written += len(batch)
            self._stored(None, batch)
            return True
        except Exception:
            log.exception("replaying spilled traces failed; they stay on disk")
            return False


def _row(trace: Trace) -> Row:
    return trace_values(trace), payload_values(trace)


_SOURCE = TRACE_COLUMNS.index("source")


def _trace(values: tuple[Any, ...], payload: tuple[Any, ...] | None) -> Trace:
    """A trace rebuilt from its row (spilled traces have no Trace object left to export)."""
    row = dict(zip(TRACE_COLUMNS, values, strict=True))
    usage = Usage(**{k: int(row.get(k) or 0) for k in (
        "input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens",
        "reasoning_tokens")})
    fields = {k: v for k, v in row.items() if k in _TRACE_FIELDS and v is not None}
    for k in ("tags", "attempt_log", "guard"):
        if isinstance(fields.get(k), str):
            fields[k] = orjson.loads(fields[k])
    t = Trace(**fields, usage=usage)
    if payload:
        t.request_body = orjson.loads(payload[1]) if payload[1] else None
        t.response_body = orjson.loads(payload[2]) if payload[2] else None
    return t


_TRACE_FIELDS = frozenset(Trace.__dataclass_fields__) - {"usage", "mono_start"}
