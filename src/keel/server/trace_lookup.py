"""Finding the trace a request names, without ever draining the trace writer.

A trace is submitted to the writer before the last byte of its answer leaves, and stored a
batch later (``KEEL_TRACE_FLUSH_INTERVAL_S``), so a client holding an ``x-keel-trace-id``
may name a trace the store does not have yet. Two kinds of lookup:

- :func:`lookup_trace` (reads: ``GET /api/traces/{id}``, ``GET /api/feedback``): the writer's
  in-memory index first (O(1)), then the store; a miss is answered at once.
- :func:`await_trace` and :func:`await_trace_teams` (writes that attach to a trace: feedback,
  outcomes): a trace in this process's writer is waited for (its own event, set when its
  batch is stored; nothing is flushed); one this process never saw (another replica answered
  it) is looked for in the store, at growing intervals, for ``KEEL_FEEDBACK_WAIT_S``.

``visible`` says whether the caller may know of a trace of a given team
(``keel.feedback.service.may_see``): a trace it may not see is found like a missing one
(None) and, by the writes, waited for like one, so both are answered alike, and as late.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from keel.errors import KeelError
from keel.server.state import AppState
from keel.store import feedback as queries
from keel.store.traces import get_trace
from keel.types import JSON

__all__ = ["Visible", "await_trace", "await_trace_teams", "feedback_wait_s",
           "lookup_trace", "not_stored_yet", "still_unstored"]

POLL_FIRST_S = 0.05
POLL_MAX_S = 0.5

Visible = Callable[[str | None], bool]  # team -> whether the caller may know of its traces


def feedback_wait_s(st: AppState) -> float:
    """How long a write waits for the trace it names (``KEEL_FEEDBACK_WAIT_S``)."""
    return st.settings.feedback_wait_s


async def lookup_trace(st: AppState, trace_id: str, *, visible: Visible) -> JSON | None:
    """The trace from the writer's memory or from the store; None at once if neither has it
    or the caller may not see it. Memory is asked first: a trace leaves it only once stored,
    so no window misses both. A hidden trace found in memory still costs the store read a
    missing one costs, so it is not told apart by how fast the 404 comes."""
    row = st.writer.unstored_row(trace_id)
    if row is not None and not visible(row.get("team")):
        await get_trace(st.store, trace_id)
        return None
    if row is None:
        row = await get_trace(st.store, trace_id)
    return row if row is not None and visible(row.get("team")) else None


async def _until(event: asyncio.Event, deadline: float) -> None:
    left = deadline - asyncio.get_running_loop().time()
    if left > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), left)


async def _sleep_until(deadline: float) -> None:
    left = deadline - asyncio.get_running_loop().time()
    if left > 0:
        await asyncio.sleep(left)


async def await_trace(st: AppState, trace_id: str, *, visible: Visible,
                      wait_s: float) -> JSON | None:
    """The stored trace ``trace_id``, waiting up to ``wait_s`` for it to be stored; None when
    it is not stored by then (or the caller may not see it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    delay = POLL_FIRST_S
    while True:
        landing = st.writer.landing(trace_id)
        if landing is not None:  # answered here: stored with its batch
            await _until(landing, deadline)
        row = await get_trace(st.store, trace_id)
        if row is not None:
            if visible(row.get("team")):
                return row
            await _sleep_until(deadline)  # answered like a missing one, as late
            return None
        left = deadline - loop.time()
        if left <= 0:
            return None
        if landing is None:  # perhaps another replica's, still in its writer
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, POLL_MAX_S)


async def await_trace_teams(st: AppState, trace_ids: Sequence[str], *, visible: Visible,
                            wait_s: float) -> dict[str, str | None]:
    """The team of each of ``trace_ids`` stored within ``wait_s`` and visible to the caller
    (the others are absent). Returns as soon as every id is found."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    delay = POLL_FIRST_S
    found: dict[str, str | None] = {}
    hidden: set[str] = set()  # stored, of a team the caller may not see: never found
    while True:
        wanted = [t for t in trace_ids if t not in found and t not in hidden]
        landings = [e for e in map(st.writer.landing, wanted) if e is not None]
        for landing in landings:
            await _until(landing, deadline)
        if wanted:
            for tid, team in (await queries.trace_teams(st.store, wanted)).items():
                if visible(team):
                    found[tid] = team
                else:
                    hidden.add(tid)
        if len(found) == len(set(trace_ids)):
            return found
        left = deadline - loop.time()
        if left <= 0:
            return found
        if not [t for t in trace_ids if t not in found and t not in hidden]:
            await _sleep_until(deadline)  # only hidden ones are missing: answer as late
            return found
        if not landings:
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, POLL_MAX_S)


def still_unstored(st: AppState, trace_ids: Sequence[str], visible: Visible) -> list[str]:
    """Those of ``trace_ids`` this process answered, visible to the caller, that are still in
    the writer's memory (the store is not taking writes)."""
    out = []
    for tid in trace_ids:
        row = st.writer.unstored_row(tid)
        if row is not None and visible(row.get("team")):
            out.append(tid)
    return out


def not_stored_yet(trace_ids: Sequence[str], wait_s: float) -> KeelError:
    shown = ", ".join(f"'{t}'" for t in trace_ids[:10]) + (
        f" (and {len(trace_ids) - 10} more)" if len(trace_ids) > 10 else "")
    return KeelError(
        f"trace {shown} was answered here but is not stored yet (waited {wait_s:g} s, "
        "KEEL_FEEDBACK_WAIT_S): the store is slow or not taking writes (see GET /ready); "
        "nothing was recorded, send the same request again later", status=503,
        code="trace_not_stored_yet",
        headers={"retry-after": "5"})
