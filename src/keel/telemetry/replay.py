"""Replaying traces that wait on disk: journal segments, dead processes' journals, old spills.

A trace is replayed when its line is in a journal segment but the trace is no longer in
memory (the queue was full, the store down for long, or its process is gone). Three
sources: this process's segments the journal hands over (``Journal.to_replay``); the
journals of processes that have exited, cleanly or not (``Journal.orphans``: this data
directory may be shared by replicas); and, once at start, the ``traces-spill-*.jsonl``
files of keel versions before the journal. A file is read and parsed in the writer's worker
thread, a batch at a time, and each batch inserted as a replay (rows already stored are
skipped, never rolled up twice); a file stays until every batch of it is stored, so a
store outage leaves it for the next pass.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from keel.store.traces import TRACE_COLUMNS, fit_values
from keel.telemetry.journal import Journal
from keel.telemetry.offload import CpuWorker, let_go, slices
from keel.telemetry.rows import Entry
from keel.telemetry.storing import BatchInserter

log = logging.getLogger("keel.telemetry")


class Replayer:
    """Stores, through the writer's ``BatchInserter``, the traces that wait on disk only."""

    def __init__(self, journal: Journal, *, spill_dir: Path, cpu: CpuWorker,
                 inserter: BatchInserter, batch_size: int) -> None:
        self.journal = journal
        self.spill_dir = spill_dir
        self._cpu = cpu
        self.inserter = inserter
        self.batch_size = batch_size

    async def replay_own(self) -> None:
        for seg in self.journal.to_replay():
            if await self.replay_file(seg.path):
                self.journal.replayed(seg)
            else:
                return

    async def replay_orphans(self) -> None:
        """Replay the journals of processes that are gone (this directory may be shared)."""
        if not self.spill_dir.exists():
            return
        for lock_path, paths in self.journal.orphans():
            remaining = list(paths)
            for path in paths:
                if not await self.replay_file(path):
                    break
                with contextlib.suppress(OSError):
                    path.unlink()
                remaining.remove(path)
            self.journal.release_orphan(lock_path, remaining)
            if remaining:
                return  # the store is down: try again later

    async def replay_legacy_spills(self) -> None:
        """Spill files of keel versions before the journal (replayed once, at start)."""
        for path in sorted(self.spill_dir.glob("traces-spill-*.jsonl")):
            replaying = path.with_suffix(".replaying")
            try:
                path.rename(replaying)
            except FileNotFoundError:
                continue
        for path in sorted(self.spill_dir.glob("traces-spill-*.replaying")):
            if await self.replay_file(path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    async def replay_file(self, path: Path) -> bool:
        """Insert every trace of a journal (or legacy spill) file; False when the store
        is unavailable (the file stays). The file is read and parsed in the worker, a batch
        at a time."""
        lines = await self._cpu.run(_lines_of, path)
        columns: tuple[str, ...] = TRACE_COLUMNS
        for start in range(0, len(lines), self.batch_size):
            batch, columns = await self._cpu.run(
                _entries_of, path, lines[start:start + self.batch_size], columns)
            if batch and await self.inserter.insert(batch, replay=True):
                return False
            self._cpu.submit(let_go, batch)
        return True


def _entry_of(item: Any, columns: tuple[str, ...]) -> Entry | None:
    """A journal line (``[values, payload]`` under the segment's header) or a legacy
    spill line (``{"row": {...}, "payload": [...]}``) as an entry; None for a header."""
    if isinstance(item, list) and len(item) == 2 and isinstance(item[0], list):
        row = dict(zip(columns, item[0], strict=False))
        payload = item[1]
    elif isinstance(item, dict) and "row" in item:
        row, payload = item["row"], item.get("payload")
    else:
        return None
    values = fit_values(tuple(row.get(c) for c in TRACE_COLUMNS))
    return Entry(values, tuple(payload) if payload else None, None, None)


def _lines_of(path: Path) -> list[bytes]:
    """The lines of a journal (or legacy spill) file; none when it is gone. (In the worker.)"""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    # A segment whose process was killed keeps its allocated size: its lines end at
    # the first NUL (the zeroed tail never written).
    end = data.find(b"\x00")
    return (data if end < 0 else data[:end]).splitlines()


def _entries_of(path: Path, lines: Sequence[bytes], columns: tuple[str, ...]
                ) -> tuple[list[Entry], tuple[str, ...]]:
    """The entries of some lines of ``path`` and the columns in force after them (a
    header line names the columns of the lines after it). (In the worker.)"""
    out: list[Entry] = []
    for part in slices(lines):
        for line in part:
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("skipping a torn line in %s", path)
                continue
            entry = _entry_of(item, columns)
            if entry is None:
                if isinstance(item, dict) and "columns" in item:
                    columns = tuple(item["columns"])
                continue
            out.append(entry)
    return out, columns
