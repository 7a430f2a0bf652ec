"""The trace journal: every finished trace on local disk before its answer leaves keel.

A process appends one JSON line per trace to its current *segment*
(``journal-<owner>-<n>.jsonl``). A segment is a file whose space is allocated up front
(``posix_fallocate``: a full disk is found when a segment is opened, never mid-write) and
mapped into memory (``mmap``, shared): appending a line is a copy into the page cache, with
no system call and without releasing the GIL on the serving thread. There is no fsync per
request: the page cache survives the process being killed (SIGKILL, the OOM killer); only a
crash of the machine itself can lose the last seconds, and ``KEEL_TRACE_JOURNAL_FSYNC_S``
bounds that when set. The unused tail of a segment is zeros; readers stop at the first NUL
(JSON lines never hold a raw NUL byte), and a closed segment is cut to its length.

Segments are private to their process. A process holds an exclusive ``flock`` on its
``journal-<owner>.lock`` for as long as it runs, so several replicas may share one data
directory: a segment is only ever replayed by a process that could take its owner's lock,
that is after the owner has exited (cleanly or not).

The writer tells the journal which segment each stored trace came from (``Segment.stored``).
A segment is rotated after ``segment_rows`` traces and removed once every trace in it is in
the store; a segment some of whose traces are not held in memory any more (the queue was
full, or the store down for long) is *replayed*: read back and inserted idempotently.

Allocating a segment, cutting a closed one to its length and removing one are system calls
that take milliseconds (tens of them on a busy disk). Given ``offload`` (a function that
runs a job in another thread), the journal keeps the next segment allocated ahead, so a
rotation on the serving thread only swaps it in, and cuts and removes files in that thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger("keel.telemetry")

PREFIX = "journal-"
SEGMENT_BYTES = 4 * 1024 * 1024  # allocated per segment (a larger trace gets its own)


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


class _Mapped:
    """A segment file allocated and mapped, its header written."""

    __slots__ = ("fd", "mm", "path", "size")

    def __init__(self, path: Path, fd: int, mm: mmap.mmap, size: int) -> None:
        self.path, self.fd, self.mm, self.size = path, fd, mm, size

    def discard(self) -> None:
        with contextlib.suppress(OSError, ValueError, BufferError):
            self.mm.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)
        with contextlib.suppress(OSError):
            self.path.unlink()


Offload = Callable[[Callable[[], None]], object]  # runs a job in another thread


class Journal:
    def __init__(self, directory: str | os.PathLike[str], *, header: bytes = b"",
                 segment_rows: int = 5000, fsync_interval_s: float | None = None,
                 offload: Offload | None = None) -> None:
        self.dir = Path(directory)
        self.header = header  # the first line of every segment (what its lines mean)
        self.segment_rows = segment_rows
        self.fsync_interval_s = fsync_interval_s
        self.offload = offload  # None: file work happens in the caller's thread
        self._spare: _Mapped | None = None  # the next segment, allocated ahead
        self._spare_lock = threading.Lock()
        self._preparing = False
        self._closed = False  # no spare is kept once closed
        self.owner = ""
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._mm: mmap.mmap | None = None
        self._offset = 0  # where the next line goes in the current segment
        self._size = 0  # the current segment's allocated size
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
            self._closed = False
            self._prepare_spare()
            return
        raise RuntimeError(f"could not take a journal owner lock in {self.dir}")

    def close(self, *, keep: bool) -> None:
        """Close the current segment; remove every settled one (all of them unless
        ``keep``), then release the owner lock, so another process may replay the rest.
        Everything happens here and now (none of it is offloaded)."""
        offload, self.offload = self.offload, None
        self._close_current()
        for seg in list(self.segments):
            if seg.settled or not keep:
                self._remove(seg)
        with self._spare_lock:
            spare, self._spare, self._closed = self._spare, None, True
        if spare is not None:
            spare.discard()
        self.offload = offload
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
        n = len(line)
        try:
            if seg is None or seg.appended >= self.segment_rows \
                    or self._offset + n > self._size:
                seg = self._rotate(n)
            assert self._mm is not None
            end = self._offset + n
            self._mm[self._offset:end] = line
            self._offset = end
        except (OSError, ValueError) as exc:
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
                with contextlib.suppress(OSError, ValueError):
                    self._mm.flush()
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
        """When every trace of the current segment is stored, empty it in place (the used
        part zeroed, so nothing stale is read back after a crash)."""
        seg = self.current
        if seg is not None and seg.appended and not seg.overflowed \
                and seg.stored >= seg.appended and self._mm is not None:
            start = len(self.header)
            try:
                self._mm[start:self._offset] = bytes(self._offset - start)
            except (OSError, ValueError):
                self._drop_current_after_error()
                return
            self._offset = start
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

    def _rotate(self, need: int = 0) -> Segment:
        self._close_current()
        mapped = self._take_spare(need)
        if mapped is None:
            self._seq += 1
            mapped = self._allocate(self._seq, need)
        self._fd, self._mm, self._size = mapped.fd, mapped.mm, mapped.size
        self._offset = len(self.header)
        self.current = Segment(mapped.path)
        self._prepare_spare()
        return self.current

    def _allocate(self, seq: int, need: int = 0) -> _Mapped:
        path = self.dir / f"{PREFIX}{self.owner}-{seq:06d}.jsonl"
        size = max(SEGMENT_BYTES, len(self.header) + need)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.posix_fallocate(fd, 0, size)  # ENOSPC here, not a SIGBUS on a later copy
            mm = mmap.mmap(fd, size)
            mm[:len(self.header)] = self.header
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        return _Mapped(path, fd, mm, size)

    def _take_spare(self, need: int) -> _Mapped | None:
        """The segment allocated ahead, if there is one and the line fits in it."""
        with self._spare_lock:
            spare = self._spare
            if spare is None or spare.size < len(self.header) + need:
                return None
            self._spare = None
            return spare

    def _prepare_spare(self) -> None:
        """Have the next segment allocated in the offload thread (once at a time)."""
        if self.offload is None or self._preparing or self._spare is not None \
                or self._closed or self._lock_fd is None:
            return
        self._preparing = True
        self._seq += 1
        seq = self._seq

        def allocate() -> None:
            try:
                mapped: _Mapped | None = self._allocate(seq)
            except OSError as exc:  # the next append allocates (and reports) it itself
                log.debug("allocating the next journal segment failed: %s", exc)
                mapped = None
            with self._spare_lock:
                if mapped is not None and (self._spare is not None or self._closed):
                    mapped.discard()  # the journal closed meanwhile
                elif mapped is not None:
                    self._spare = mapped
                self._preparing = False

        try:
            self.offload(allocate)
        except Exception:
            self._preparing = False

    def _later(self, job: Callable[[], None]) -> None:
        """Run a file job in the offload thread, or here when there is none."""
        if self.offload is not None:
            try:
                self.offload(job)
                return
            except Exception:  # the thread is gone: do it here
                pass
        job()

    def _unmap(self, *, cut: bool) -> None:
        """Unmap and close the current file; ``cut``: shorten it to what was written (all of
        it in the offload thread: readers stop at the zeroed tail meanwhile)."""
        mm, fd, length = self._mm, self._fd, self._offset
        self._mm = self._fd = None
        self._offset = self._size = 0

        def finish() -> None:
            if mm is not None:
                with contextlib.suppress(OSError, ValueError, BufferError):
                    mm.close()
            if fd is not None:
                if cut:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, length)
                with contextlib.suppress(OSError):
                    os.close(fd)

        if cut:
            self._later(finish)
        else:
            finish()

    def _close_current(self) -> None:
        seg = self.current
        if seg is None:
            return
        self.current = None
        self._unmap(cut=True)
        seg.closed = True
        if seg.appended == 0:
            self._unlink_later(seg.path)
            return
        self.segments.append(seg)

    def _drop_current_after_error(self) -> None:
        """After a failed write: start a new segment next time (replay skips a torn
        line)."""
        seg = self.current
        if seg is not None and seg.appended:
            self._close_current()
            return
        self._unmap(cut=False)
        if seg is not None:
            with contextlib.suppress(OSError):
                seg.path.unlink()
        self.current = None

    def _remove(self, seg: Segment) -> None:
        self._unlink_later(seg.path)
        with contextlib.suppress(ValueError):
            self.segments.remove(seg)

    def _unlink_later(self, path: Path) -> None:
        def unlink() -> None:
            with contextlib.suppress(OSError):
                path.unlink()

        self._later(unlink)


def _seq_of(path: Path) -> int:
    try:
        return int(path.stem.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0
