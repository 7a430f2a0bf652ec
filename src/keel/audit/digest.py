"""Digests of the trace batches the writer stores, recorded in the audit log.

The writer hands each stored batch's rows to ``TraceDigest.observe`` (on the event loop,
after the batch is stored): it takes the batch's trace rows and has them hashed in a worker
thread (``keel.telemetry.offload``, in slices, so the loop is not held while a large batch
is hashed), keeping only the batch's size, time and digest. ``flush`` (every minute in
``keel serve``, and at shutdown) waits for the digests observed so far and appends one
``traces.stored`` entry listing the digests of the batches since the last flush, so the log
does not grow with the traffic.

A batch digest is SHA-256 over, for each row in trace-id order: the id, a NUL byte and the
SHA-256 of the row's values (the numeric trace row as stored, JSON-encoded; not the
request/response content).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import orjson

from keel.audit.log import AuditLog
from keel.telemetry.offload import CpuWorker, outcome, slices

log = logging.getLogger("keel.audit")

MAX_BATCHES = 1000  # per entry; more are flushed in several entries


def batch_digest(rows: Sequence[Sequence[Any]]) -> str:
    h = hashlib.sha256()
    for part in slices(sorted(rows, key=lambda v: str(v[0]))):
        for values in part:
            h.update(str(values[0]).encode() + b"\x00")
            h.update(hashlib.sha256(orjson.dumps(list(values))).digest())
    return h.hexdigest()


class TraceDigest:
    def __init__(self) -> None:
        self._batches: list[tuple[int, str, float]] = []  # (traces, digest, observed at)
        self._hashing: deque[tuple[int, Future[str], float]] = deque()  # in the worker
        self._worker = CpuWorker("keel-trace-digest")

    def observe(self, batch: Sequence[tuple[Sequence[Any], Any]]) -> None:
        """The writer's hook: ``batch`` is [(trace row values, payload values), ...]."""
        if not batch:
            return
        rows = [values for values, _ in batch]
        self._hashing.append((len(rows), self._worker.submit(batch_digest, rows), time.time()))

    @property
    def pending(self) -> int:
        return len(self._batches) + len(self._hashing)

    async def _collect(self) -> None:
        """Wait for every batch observed so far to be hashed, in the order observed."""
        while self._hashing:
            n, future, at = self._hashing[0]
            try:
                digest = await outcome(future)
            except Exception:  # a row that cannot be hashed: that batch is not recorded
                log.exception("digesting %d stored traces failed", n)
                self._hashing.popleft()
                continue
            self._hashing.popleft()
            self._batches.append((n, digest, at))

    async def flush(self, audit: AuditLog) -> None:
        await self._collect()
        while self._batches:
            taken, self._batches = self._batches[:MAX_BATCHES], self._batches[MAX_BATCHES:]
            total = sum(n for n, _, _ in taken)
            digest = hashlib.sha256("".join(d for _, d, _ in taken).encode()).hexdigest()
            try:
                await audit.record("traces.stored", actor="keel", after=digest, detail={
                    "traces": total, "batches": [[n, d] for n, d, _ in taken],
                    "first_batch_at": taken[0][2], "last_batch_at": taken[-1][2]})
            except BaseException:
                self._batches[:0] = taken  # keep them for the next try
                raise
