"""CPU work of the trace path, done off the event loop: one worker thread, work in slices.

A thread does not by itself free the event loop from pure-Python work: both need the GIL,
and a loop that wakes up for a request while the worker holds it waits until the worker
lets go, up to the interpreter's switch interval (5 ms) each time. So the work is cut into
``slices`` of ``SLICE`` items and the worker hands the GIL back between two slices (a
``time.sleep(0)`` releases it): a loop waiting for the GIL gets it after one slice. Measured
on a 500-trace batch (rollup deltas and the audit digest, about 8 ms of CPU), the longest
wait of a request arriving during it was about 10 ms run whole on the loop, 7-10 ms run
whole in a thread, and about 1 ms run in slices in the thread.

Work that is not sliced (a C call such as a sort or a file read) must be short, or release
the GIL itself. If the thread cannot be used (the interpreter is shutting down), the work
runs in the caller's thread instead: slower for the loop, never lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
SLICE = 32  # items between two GIL hand-overs: a slice is a fraction of a millisecond


def slices(items: Sequence[T], size: int = SLICE) -> Iterator[Sequence[T]]:
    """``items`` a slice at a time, the GIL released between two slices (so an event loop
    that waits for it meanwhile gets it). Harmless on the loop's own thread."""
    for start in range(0, len(items), size):
        if start:
            time.sleep(0)
        yield items[start:start + size]


def let_go(items: list[Any], size: int = SLICE) -> None:
    """Drop the references ``items`` holds, a slice at a time, the GIL released between
    two slices: the objects only ``items`` still held are freed here, in this thread (freeing
    a stored batch of 500 traces with their bodies takes a few milliseconds)."""
    while items:
        del items[-size:]
        if items:
            time.sleep(0)


class CpuWorker:
    """One thread that runs functions in the order they are given (created at first use)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn(*args)`` in the worker; its future (already done if it had to run here)."""
        try:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
            return self._pool.submit(fn, *args)
        except RuntimeError:  # no new threads or futures now (interpreter shutdown)
            done: Future[T] = Future()
            try:
                done.set_result(fn(*args))
            except Exception as exc:
                done.set_exception(exc)
            return done

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` run in the worker, awaited. A cancelled caller does not cancel it."""
        return await outcome(self.submit(fn, *args))

    def close(self) -> None:
        """Let the thread go once it has run what it was given (a later use starts another)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


async def outcome(future: Future[T]) -> T:
    """The result of a worker's ``future``, awaited; cancelling the waiter leaves the work
    running and its future intact (to be awaited again)."""
    if future.done():
        return future.result()
    return await asyncio.shield(asyncio.wrap_future(future))
