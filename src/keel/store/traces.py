"""Trace queries: batched idempotent inserts, filtered listing with cursor pagination."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.sql.util import ClauseAdapter

from keel.store import rollups
from keel.store.clean import RowFitter, dumps_json
from keel.store.db import Store, row_dict
from keel.store.schema import trace_payloads, traces
from keel.store.sql import placeholders
from keel.types import Trace

TRACE_COLUMNS = tuple(str(c.name) for c in traces.columns)
PAYLOAD_COLUMNS = tuple(str(c.name) for c in trace_payloads.columns)
# computes the rollup deltas of the trace rows a batch inserts
DeltasOf = Callable[[list[tuple[Any, ...]]], Awaitable[rollups.Deltas]]


def trace_values(t: Trace) -> tuple[Any, ...]:
    """The trace's row, in ``TRACE_COLUMNS`` order (JSON columns already serialized), with
    every value made to fit its column (``keel.store.clean``): a row is never refused for
    what a client put in it."""
    u = t.usage
    return _FIT((
        t.id, t.start_time, t.end_time or t.start_time, t.endpoint, t.key_id, t.team,
        t.feature, t.user, t.session, dumps_json(t.tags) if t.tags else None,
        t.model_requested, t.model_served, t.provider, t.attempts, t.status, t.error_type,
        t.error_message, t.latency_ms, t.ttft_ms, t.stream, u.input_tokens, u.output_tokens,
        u.cached_tokens, u.cache_write_tokens, u.reasoning_tokens, t.cost_usd,
        t.route, t.variant, dumps_json(t.attempt_log) if t.attempt_log else None,
        t.cache_hit, t.cost_saved_usd, t.prompt_name, t.prompt_version, t.source,
        t.policy, t.policy_version, t.guard_ms,
        dumps_json(t.guard) if t.guard else None,
        t.request_id,
    ))


def payload_values(t: Trace) -> tuple[Any, ...] | None:
    """The trace's content row, or None; content that cannot be serialised (or is too
    large) is stored in its marked, truncated safe form."""
    if t.request_body is None and t.response_body is None:
        return None
    return (
        t.id,
        dumps_json(t.request_body) if t.request_body is not None else None,
        dumps_json(t.response_body) if t.response_body is not None else None,
    )


def fit_values(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row read back from elsewhere (a journal written by an older keel) made to fit."""
    return _FIT(values)


_FIT = RowFitter(traces).fit


def _insert_sql(store: Store, table: sa.Table, columns: tuple[str, ...]) -> str:
    """An idempotent positional INSERT for the driver, built once per store and table."""
    cache = store.sql_cache
    sql = cache.get(table.name)
    if sql is None:
        dialect = store.engine.dialect
        quote = dialect.identifier_preparer.quote
        cols = ", ".join(quote(c) for c in columns)
        sql = (f"INSERT INTO {quote(table.name)} ({cols}) VALUES "
               f"({placeholders(dialect.paramstyle, len(columns))}) ON CONFLICT DO NOTHING")
        cache[table.name] = sql
    return sql


async def insert_rows(
    store: Store, rows: list[tuple[Any, ...]], payloads: list[tuple[Any, ...]],
    *, replay: bool = False, deltas: DeltasOf | None = None,
) -> set[str] | None:
    """Insert a batch in one transaction, with its rollups; rows already stored (a replay
    of journaled traces) are skipped, and not rolled up twice (``replay`` checks for them).
    With ``replay``, returns the ids of the rows skipped; otherwise None.

    ``deltas`` computes the rollup deltas of the rows that are inserted (the trace writer
    has them computed in a worker thread, off the event loop); by default, here. It is
    awaited before the first write, so no write lock is held meanwhile.

    Positional tuples go straight to the driver's executemany: on the hot write path the
    per-row parameter processing of a Core ``insert()`` costs more than the insert itself.
    """
    if not rows:
        return set() if replay else None
    skipped: set[str] | None = None
    async with store.begin() as conn:
        if replay:
            ids = [r[0] for r in rows]
            stored = {str(i) for (i,) in (await conn.execute(
                sa.select(traces.c.id).where(traces.c.id.in_(ids)))).all()}
            # Also once per id within the batch (a re-sent span may share a batch with itself).
            rows = list({r[0]: r for r in rows if r[0] not in stored}.values())
            payloads = list({p[0]: p for p in payloads if p[0] not in stored}.values())
            skipped = stored
            if not rows:
                return skipped
        added = rollups.trace_deltas(dict(zip(TRACE_COLUMNS, r, strict=True)) for r in rows) \
            if deltas is None else await deltas(rows)
        await conn.exec_driver_sql(_insert_sql(store, traces, TRACE_COLUMNS), rows)
        if payloads:
            await conn.exec_driver_sql(
                _insert_sql(store, trace_payloads, PAYLOAD_COLUMNS), payloads)
        await rollups.apply(conn, store, added)
    return skipped


@dataclass(slots=True)
class TraceFilter:
    feature: str | None = None
    team: str | None = None
    model: str | None = None
    status: str | None = None  # "ok", "error", or an HTTP status code
    key_id: str | None = None
    request_id: str | None = None  # the x-request-id the answer carried
    since: float | None = None
    until: float | None = None


def _where(f: TraceFilter) -> list[Any]:
    cond: list[Any] = []
    if f.feature:
        cond.append(traces.c.feature == f.feature)
    if f.team:
        cond.append(traces.c.team == f.team)
    if f.model:
        cond.append(sa.or_(traces.c.model_requested == f.model, traces.c.model_served == f.model))
    if f.key_id:
        cond.append(traces.c.key_id == f.key_id)
    if f.request_id:
        cond.append(traces.c.request_id == f.request_id)
    if f.status == "ok":
        cond.append(traces.c.status < 400)
    elif f.status == "error":
        cond.append(traces.c.status >= 400)
    elif f.status:
        cond.append(traces.c.status == int(f.status))
    if f.since is not None:
        cond.append(traces.c.start_time >= f.since)
    if f.until is not None:
        cond.append(traces.c.start_time < f.until)
    return cond


# An id starts with its trace's start millisecond (``keel.types.new_trace_id``, taken with
# ``start_time``): a window's traces have ids within this much of the window's edges.
ID_SLACK_S = 60.0
LIST_PROBE = 5000
_LIST_PROBE_COLUMNS = ("id", "start_time", "feature", "team", "model_requested",
                       "model_served", "status", "key_id", "request_id")  # all ``_where`` reads


def _id_at(t: float) -> str:
    """The smallest id of a trace that started at ``t`` (seconds) or later."""
    return f"{max(0, int(t * 1000)):012x}"


async def list_traces(
    store: Store, f: TraceFilter, *, limit: int = 50, cursor: str | None = None,
    probe: int = LIST_PROBE, oldest_first: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first (``oldest_first``: oldest first). ``cursor`` is the last id of the
    previous page (ids sort by time).

    Two plans, each bounded, as ``costliest`` does. The ``probe`` newest traces of the
    window, read down the id index (ids from the window's start time to its end), are
    filtered: when a page and one more of them match, they are the page (every match
    outside them is older; oldest first, the same from the window's start). Otherwise (a
    narrow filter) the matches are read by the filter's index and sorted. Sorting a whole
    window by id instead takes seconds at millions of traces.
    """
    t = traces.c
    cond = _where(f)
    def after(col: Any) -> Any:  # beyond the cursor, in the page's direction
        return col > cursor if oldest_first else col < cursor

    def order(col: Any) -> Any:
        return col.asc() if oldest_first else col.desc()

    if cursor:
        cond.append(after(t.id))
    async with store.connect() as conn:
        recent = sa.select(*(t[c] for c in _LIST_PROBE_COLUMNS))
        if f.since is not None:
            recent = recent.where(t.id >= _id_at(f.since - ID_SLACK_S))
        if f.until is not None:
            recent = recent.where(t.id < _id_at(f.until + ID_SLACK_S))
        if cursor:
            recent = recent.where(after(t.id))
        top = recent.order_by(order(t.id)).limit(probe).subquery()
        adapt = ClauseAdapter(top)
        ids = [str(r[0]) for r in (await conn.execute(
            sa.select(top.c.id).where(*(adapt.traverse(c) for c in cond))
            .order_by(order(top.c.id)).limit(limit + 1))).all()]
        if len(ids) == limit + 1:
            cond = [t.id.in_(ids)]
        q = sa.select(traces).where(*cond).order_by(order(t.id)).limit(limit + 1)
        rows = [row_dict(r) for r in (await conn.execute(q)).all()]
    next_cursor = rows[limit - 1]["id"] if len(rows) > limit else None
    return rows[:limit], next_cursor


COSTLIEST_COLUMNS = ("id", "start_time", "feature", "team", "model_requested", "model_served",
                     "status", "input_tokens", "output_tokens", "cost_usd")
_FILTER_COLUMNS = ("key_id", "request_id")  # what ``_where`` reads besides those
COSTLIEST_PROBE = 5000
COSTLIEST_RANGE_BELOW = 25_000


async def costliest(store: Store, f: TraceFilter, limit: int = 20, *,
                    expected: int | None = None,
                    probe: int = COSTLIEST_PROBE) -> list[dict[str, Any]]:
    """The ``limit`` most expensive priced traces (``cost_usd > 0``) matching ``f``, most
    expensive first (``COSTLIEST_COLUMNS`` only), without reading every trace of a window.

    Two plans, each bounded. The ``probe`` most expensive traces of all time, read down the
    ``cost_usd`` index, are filtered: when ``limit`` of them match, they are the answer (a
    matching trace outside them costs no more than every one inside). Otherwise, or when
    the window is ``expected`` to hold at most ``COSTLIEST_RANGE_BELOW`` traces (the rollups
    tell the caller), the window's traces are read by time and the costliest kept. The
    probe costs the same whatever the store's size; the window read grows with the window,
    so it is used when that is small, or when the probe finds too few (a narrow filter, or
    one whose traces are cheaper than most).
    """
    t = traces.c
    cond = [*_where(f), t.cost_usd > 0]
    if expected is None or expected > COSTLIEST_RANGE_BELOW:
        top = (sa.select(*(t[c] for c in (*COSTLIEST_COLUMNS, *_FILTER_COLUMNS)))
               .where(t.cost_usd > 0).order_by(t.cost_usd.desc()).limit(probe).subquery())
        adapt = ClauseAdapter(top)
        q = (sa.select(*(top.c[c] for c in COSTLIEST_COLUMNS))
             .where(*(adapt.traverse(c) for c in cond))
             .order_by(top.c.cost_usd.desc(), top.c.id.desc()).limit(limit))
        async with store.connect() as conn:
            rows = [row_dict(r) for r in (await conn.execute(q)).all()]
        if len(rows) == limit:
            return rows
    q = (sa.select(*(t[c] for c in COSTLIEST_COLUMNS)).where(*cond)
         .order_by(t.cost_usd.desc(), t.id.desc()).limit(limit))
    async with store.connect() as conn:
        return [row_dict(r) for r in (await conn.execute(q)).all()]


async def get_trace(store: Store, trace_id: str) -> dict[str, Any] | None:
    q = (
        sa.select(traces, trace_payloads.c.request, trace_payloads.c.response)
        .select_from(traces.outerjoin(trace_payloads, trace_payloads.c.trace_id == traces.c.id))
        .where(traces.c.id == trace_id)
    )
    async with store.connect() as conn:
        row = (await conn.execute(q)).first()
    if row is None:
        return None
    out = row_dict(row)
    for k in ("request", "response"):
        out[k] = orjson.loads(out[k]) if out[k] else None
    return out


async def count_traces(store: Store, f: TraceFilter | None = None) -> int:
    q = sa.select(sa.func.count()).select_from(traces).where(*_where(f or TraceFilter()))
    async with store.connect() as conn:
        return int((await conn.execute(q)).scalar_one())


SPEND_COLUMNS = ("key_id", "team", "feature")


async def spend_by(
    store: Store, column: str, *, since: float | None = None, value: str | None = None
) -> dict[str, float]:
    """Total ``cost_usd`` per value of ``column`` (key_id, team or feature) for traces that
    started at or after ``since`` (all time when None), optionally for one ``value``.

    Budgets reconcile their current period's spend from this on start.
    """
    if column not in SPEND_COLUMNS:
        raise ValueError(f"spend_by: column must be one of {SPEND_COLUMNS}, got {column!r}")
    col = traces.c[column]
    cond: list[Any] = [col.is_not(None)]
    if value is not None:
        cond.append(col == value)
    if since is not None:
        cond.append(traces.c.start_time >= since)
    q = sa.select(col, sa.func.sum(traces.c.cost_usd)).where(*cond).group_by(col)
    async with store.connect() as conn:
        rows = (await conn.execute(q)).all()
    return {str(r[0]): float(r[1] or 0.0) for r in rows}
