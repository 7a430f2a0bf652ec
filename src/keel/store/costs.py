"""Cost queries: stored token counts to reprice, cost updates, cost events, and spend sums
read from the rollups (never from raw traces)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.store.db import Store, row_dict
from keel.store.schema import cost_events, rollups, traces

USAGE_COLUMNS = ("id", "start_time", "status", "cache_hit", "model_requested", "model_served",
                 "input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens",
                 "reasoning_tokens", "cost_usd", "feature", "team", "prompt_name",
                 "prompt_version")


async def usage_page(conn: AsyncConnection, model: str, since: float, until: float | None,
                     after: tuple[float, str] | None, limit: int) -> list[dict[str, Any]]:
    """Traces of ``model`` (requested or served, exactly or as a snapshot ``model-...``)
    that started in ``[since, until)``, after the keyset ``after``, oldest first."""
    t = traces.c
    cond: list[Any] = [
        sa.or_(t.model_requested == model, t.model_served == model,
               t.model_served.startswith(model + "-", autoescape=True)),
        t.start_time >= since,
    ]
    if until is not None:
        cond.append(t.start_time < until)
    if after is not None:
        cond.append(sa.or_(t.start_time > after[0],
                           sa.and_(t.start_time == after[0], t.id > after[1])))
    q = (sa.select(*(t[c] for c in USAGE_COLUMNS)).where(*cond)
         .order_by(t.start_time, t.id).limit(limit))
    return [row_dict(r) for r in (await conn.execute(q)).all()]


async def set_costs(conn: AsyncConnection, costs: list[tuple[str, float]]) -> None:
    """Set ``cost_usd`` of traces by id: ``[(id, cost), ...]``."""
    if not costs:
        return
    q = (traces.update().where(traces.c.id == sa.bindparam("b_id"))
         .values(cost_usd=sa.bindparam("b_cost")))
    await conn.execute(q, [{"b_id": i, "b_cost": c} for i, c in costs])


async def add_event(store: Store, **values: Any) -> int:
    async with store.begin() as conn:
        res = await conn.execute(cost_events.insert().values(**values))
        return int(res.inserted_primary_key[0])


async def list_events(store: Store, *, model: str | None = None,
                      limit: int = 100) -> list[dict[str, Any]]:
    """Newest first."""
    q = sa.select(cost_events)
    if model:
        q = q.where(cost_events.c.model == model)
    q = q.order_by(cost_events.c.id.desc()).limit(limit)
    async with store.connect() as conn:
        return [row_dict(r) for r in (await conn.execute(q)).all()]


SPEND_SUMS = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens",
              "reasoning_tokens", "cost_usd", "cache_hits", "cost_saved_usd")


async def rollup_sums(store: Store, granularity: str, since: float, until: float,
                      group: list[str], by_bucket: bool) -> list[dict[str, Any]]:
    """Sums of ``SPEND_SUMS`` over the rollup rows of one granularity in ``[since, until)``,
    per ``group`` columns (and per bucket when ``by_bucket``)."""
    keys = [rollups.c[g] for g in group]
    if by_bucket:
        keys.append(rollups.c.bucket)
    q = (sa.select(*keys, *(sa.func.sum(rollups.c[c]).label(c) for c in SPEND_SUMS))
         .where(rollups.c.granularity == granularity, rollups.c.bucket >= since,
                rollups.c.bucket < until)
         .group_by(*keys))
    async with store.connect() as conn:
        return [row_dict(r) for r in (await conn.execute(q)).all()]
