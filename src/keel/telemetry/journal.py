"""The trace journal: every finished trace on local disk before its answer leaves keel.

A process appends one JSON line per trace to its current *segment*
(``journal-<owner>-<n>.jsonl``) with a single ``write(2)`` on an ``O_APPEND`` descriptor.
There is no fsync per request: the operating system's page cache survives the process
being killed (SIGKILL, the OOM killer); only a crash of the machine itself can lose the
last few seconds, and ``KEEL_TRACE_JOURNAL_FSYNC_S`` bounds that when set.

Segments are private to their process. A process holds an exclusive ``flock`` on its
``journal-<owner>.lock`` for as long as it runs, so several replicas may share one data
directory: a segment is only ever replayed by a process that could take its owner's lock,
that is after the owner has exited (cleanly or not).

The writer tells the journal which segment each stored trace came from (``Segment.stored``).
A segment is rotated after ``segment_rows`` traces and removed once every trace in it is in
the store; a segment some of whose traces are not held in memory any more (the queue was
full, or the store down for long) is *replayed*: read back and inserted idempotently.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("keel.telemetry")

PREFIX = "journal-"


class Segment:
    __slots__ = ("appended", "closed", "overflowed", "path", "stored")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.appended = 0
        self.stored = 0
        self.closed = False
        # Traces of this segment that are on disk only (not queued in memory): they must be
        # read back from the file.
        self.overflowed = 0

    @property
    def settled(self) -> bool:
        """Closed and every trace stored: the file can go."""
        return self.closed and not self.overflowed and self.stored >= self.appended

    @property
    def replayable(self) -> bool:
        """Closed, with traces on disk only, and every trace that was held in memory
        stored: replaying it now cannot race the queue (or count a trace twice)."""
        return self.closed and self.overflowed > 0 \
            and self.stored + self.overflowed >= self.appended


class Journal:
    def __init__(self, directory: str | os.PathLike[str], *, header: bytes = b"",
                 segment_rows: int = 5000, fsync_interval_s: float | None = None) -> None:
        self.dir = Path(directory)
        self.header = header  # the first line of every segment (what its lines mean)
        self.segment_rows = segment_rows
        self.fsync_interval_s = fsync_interval_s
        self.owner = ""
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._seq = 0
        self.current: Segment | None = None
        self.segments: list[Segment] = []  # closed segments not removed yet, oldest first
        self.failing: str | None = None  # why the last append failed, until one succeeds
        self.errors = 0
        self._last_fsync = time.monotonic()

    # --- ownership ---------------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory and take an owner name no other live process holds."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for _ in range(16):
            owner = f"{os.getpid()}-{secrets.token_hex(4)}"
            fd = os.open(self.dir / f"{PREFIX}{owner}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.owner, self._lock_fd = owner, fd
            return
        raise RuntimeError(f"could not take a journal owner lock in {self.dir}")

    def close(self, *, keep: bool) -> None:
        """Close the current segment; remove every settled one (all of them unless
        ``keep``), then release the owner lock, so another process may replay the rest."""
        self._close_current()
        for seg in list(self.segments):
            if seg.settled or not keep:
                self._remove(seg)
        if self._lock_fd is not None:
            lock_path = self.dir / f"{PREFIX}{self.owner}.lock"
            if not self.segments:
                with contextlib.suppress(OSError):
                    lock_path.unlink()
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- appending (the hot path) ------------------------------------------------------------

    def append(self, line: bytes) -> Segment | None:
        """Append one trace line; the segment it went to, or None when the disk refused it
        (full, read-only, gone): the caller keeps the trace in memory instead."""
        seg = self.current
        try:
            if seg is None or seg.appended >= self.segment_rows:
                seg = self._rotate()
            assert self._fd is not None
            n = os.write(self._fd, line)
            if n != len(line):  # a short write (a full disk): finish or fail the line
                os.write(self._fd, line[n:])
        except OSError as exc:
            self.errors += 1
            if self.failing is None:
                log.error("cannot write the trace journal in %s (%s); traces are kept in "
                          "memory until it is writable again", self.dir, exc)
            self.failing = f"{type(exc).__name__}: {exc}"
            self._drop_current_after_error()
            return None
        if self.failing is not None:
            log.warning("the trace journal in %s is writable again", self.dir)
            self.failing = None
        seg.appended += 1
        if self.fsync_interval_s is not None:
            now = time.monotonic()
            if now - self._last_fsync >= self.fsync_interval_s:
                self._last_fsync = now
                with contextlib.suppress(OSError):
                    os.fsync(self._fd)
        return seg

    def probe(self) -> None:
        """While appends fail, try a fresh segment (called when the writer is idle), so a
        disk that has room again is noticed without waiting for the next trace."""
        if self.failing is None or not self.owner:
            return
        try:
            self._rotate()
        except OSError as exc:
            self.failing = f"{type(exc).__name__}: {exc}"
            self._drop_current_after_error()
            return
        log.warning("the trace journal in %s is writable again", self.dir)
        self.failing = None

    # --- settling ----------------------------------------------------------------------------

    def rotate_if_dirty(self) -> None:
        """Close the current segment if it holds traces that are on disk only (so the
        writer can replay it) — called when the writer is idle."""
        if self.current is not None and self.current.overflowed:
            self._close_current()

    def truncate_if_settled(self) -> None:
        """When every trace of the current segment is stored, empty it in place."""
        seg = self.current
        if seg is not None and seg.appended and not seg.overflowed \
                and seg.stored >= seg.appended and self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
                if self.header:
                    os.write(self._fd, self.header)
            except OSError:
                self._drop_current_after_error()
                return
            seg.appended = seg.stored = 0

    def to_replay(self) -> list[Segment]:
        return [s for s in self.segments if s.replayable]

    def settle(self) -> None:
        """Remove closed segments whose traces are all stored."""
        for seg in list(self.segments):
            if seg.settled:
                self._remove(seg)

    def replayed(self, seg: Segment) -> None:
        self._remove(seg)

    # --- other processes' journals -----------------------------------------------------------

    def orphans(self) -> Iterator[tuple[Path, list[Path]]]:
        """For each owner that is gone: its lock file (held by us while yielded) and its
        segment files, oldest first. The caller replays them and then calls
        ``release_orphan``. Segments without any lock file (removed by hand) count too."""
        owners: dict[str, list[Path]] = {}
        for path in self.dir.glob(f"{PREFIX}*.jsonl"):
            owner = path.name[len(PREFIX):].rsplit("-", 1)[0]
            if owner != self.owner:
                owners.setdefault(owner, []).append(path)
        for owner, paths in sorted(owners.items()):
            lock_path = self.dir / f"{PREFIX}{owner}.lock"
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its owner is alive
                os.close(fd)
                continue
            try:
                yield lock_path, sorted(paths, key=_seq_of)
            finally:
                os.close(fd)

    @staticmethod
    def release_orphan(lock_path: Path, remaining: list[Path]) -> None:
        if not remaining:
            with contextlib.suppress(OSError):
                lock_path.unlink()

    # --- internals ---------------------------------------------------------------------------

    def _rotate(self) -> Segment:
        self._close_current()
        self._seq += 1
        path = self.dir / f"{PREFIX}{self.owner}-{self._seq:06d}.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.current = Segment(path)
        if self.header:
            os.write(self._fd, self.header)
        return self.current

    def _close_current(self) -> None:
        seg = self.current
        if seg is None:
            return
        self.current = None
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        seg.closed = True
        if seg.appended == 0:
            with contextlib.suppress(OSError):
                seg.path.unlink()
            return
        self.segments.append(seg)

    def _drop_current_after_error(self) -> None:
        """After a failed write the file may end in a torn line: start a new segment next
        time (replay skips torn lines)."""
        seg = self.current
        if seg is not None and seg.appended:
            self._close_current()
            return
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if seg is not None:
            with contextlib.suppress(OSError):
                seg.path.unlink()
        self.current = None

    def _remove(self, seg: Segment) -> None:
        with contextlib.suppress(OSError):
            seg.path.unlink()
        with contextlib.suppress(ValueError):
            self.segments.remove(seg)


def _seq_of(path: Path) -> int:
    try:
        return int(path.stem.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0
