"""Digests of the trace batches the writer stores, recorded in the audit log.

The writer hands each stored batch's rows to ``TraceDigest.observe`` (a plain function call
in the writer's background task, never on the request path): it keeps the batch's size and
a SHA-256 over its trace ids and row hashes, and nothing else. ``flush`` (every minute in
``keel serve``, and at shutdown) appends one ``traces.stored`` entry listing the digests of
the batches since the last flush, so the log does not grow with the traffic.

A batch digest is SHA-256 over, for each row in trace-id order: the id, a NUL byte and the
SHA-256 of the row's values (the numeric trace row as stored, JSON-encoded; not the
request/response content).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import orjson

from keel.audit.log import AuditLog

MAX_BATCHES = 1000  # per entry; more are flushed in several entries


def batch_digest(rows: Sequence[Sequence[Any]]) -> str:
    h = hashlib.sha256()
    for values in sorted(rows, key=lambda v: str(v[0])):
        h.update(str(values[0]).encode() + b"\x00")
        h.update(hashlib.sha256(orjson.dumps(list(values))).digest())
    return h.hexdigest()


class TraceDigest:
    def __init__(self) -> None:
        self._batches: list[tuple[int, str]] = []
        self._since: float | None = None
        self._until: float | None = None

    def observe(self, batch: Sequence[tuple[Sequence[Any], Any]]) -> None:
        """The writer's hook: ``batch`` is [(trace row values, payload values), ...]."""
        if not batch:
            return
        now = time.time()
        self._since = self._since or now
        self._until = now
        self._batches.append((len(batch), batch_digest([values for values, _ in batch])))

    @property
    def pending(self) -> int:
        return len(self._batches)

    async def flush(self, audit: AuditLog) -> None:
        while self._batches:
            taken, self._batches = self._batches[:MAX_BATCHES], self._batches[MAX_BATCHES:]
            since, until = self._since, self._until
            if not self._batches:
                self._since = self._until = None
            total = sum(n for n, _ in taken)
            digest = hashlib.sha256("".join(d for _, d in taken).encode()).hexdigest()
            try:
                await audit.record("traces.stored", actor="keel", after=digest, detail={
                    "traces": total, "batches": [[n, d] for n, d in taken],
                    "first_batch_at": since, "last_batch_at": until})
            except BaseException:
                self._batches[:0] = taken  # keep them for the next try
                self._since = since
                raise
