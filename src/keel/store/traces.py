"""Trace queries: batched idempotent inserts, filtered listing with cursor pagination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from keel.store.db import Store, row_dict
from keel.store.schema import trace_payloads, traces
from keel.types import Trace

TRACE_COLUMNS = [c.name for c in traces.columns]


def trace_row(t: Trace) -> dict[str, Any]:
    u = t.usage
    return {
        "id": t.id, "start_time": t.start_time, "end_time": t.end_time or t.start_time,
        "endpoint": t.endpoint, "key_id": t.key_id, "team": t.team, "feature": t.feature,
        "user": t.user, "session": t.session, "tags": t.tags or None,
        "model_requested": t.model_requested, "model_served": t.model_served,
        "provider": t.provider, "attempts": t.attempts, "status": t.status,
        "error_type": t.error_type, "error_message": t.error_message,
        "latency_ms": t.latency_ms, "ttft_ms": t.ttft_ms, "stream": t.stream,
        "input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
        "cached_tokens": u.cached_tokens, "cache_write_tokens": u.cache_write_tokens,
        "reasoning_tokens": u.reasoning_tokens, "cost_usd": t.cost_usd,
    }


def payload_row(t: Trace) -> dict[str, Any] | None:
    if t.request_body is None and t.response_body is None:
        return None
    return {
        "trace_id": t.id,
        "request": orjson.dumps(t.request_body).decode() if t.request_body is not None else None,
        "response": orjson.dumps(t.response_body).decode() if t.response_body is not None else None,
    }


def _insert(store: Store, table: sa.Table) -> Any:
    ins = pg_insert(table) if store.dialect == "postgresql" else sqlite_insert(table)
    return ins.on_conflict_do_nothing()


async def insert_rows(
    store: Store, rows: list[dict[str, Any]], payloads: list[dict[str, Any]]
) -> None:
    """Insert a batch in one transaction; rows already stored (a replay) are skipped."""
    if not rows:
        return
    async with store.begin() as conn:
        await conn.execute(_insert(store, traces), rows)
        if payloads:
            await conn.execute(_insert(store, trace_payloads), payloads)


@dataclass(slots=True)
class TraceFilter:
    feature: str | None = None
    team: str | None = None
    model: str | None = None
    status: str | None = None  # "ok", "error", or an HTTP status code
    key_id: str | None = None
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


async def list_traces(
    store: Store, f: TraceFilter, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first. ``cursor`` is the last id of the previous page (ids sort by time)."""
    cond = _where(f)
    if cursor:
        cond.append(traces.c.id < cursor)
    q = sa.select(traces).where(*cond).order_by(traces.c.id.desc()).limit(limit + 1)
    async with store.connect() as conn:
        rows = [row_dict(r) for r in (await conn.execute(q)).all()]
    next_cursor = rows[limit - 1]["id"] if len(rows) > limit else None
    return rows[:limit], next_cursor


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
