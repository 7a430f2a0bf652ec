"""What a budget scope has spent since a time: the truth budget counters are built from.

Teams and features read the day rollups when the period starts at a UTC midnight (every
budget period does): a handful of rows per day whatever the number of traces, and still
there after retention deleted the trace rows. Key ids are not a rollup dimension, so a
key's spend sums its trace rows (an index range on ``start_time``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from keel.store.db import Store
from keel.store.schema import rollups
from keel.store.traces import spend_by

DAY = 86400.0
ROLLUP_COLUMNS = ("team", "feature")


async def period_spend(store: Store, column: str, *, since: float | None = None,
                       value: str | None = None) -> dict[str, float]:
    """Total cost (USD) per value of ``column`` (``key_id``, ``team`` or ``feature``) of
    the traces that started at or after ``since`` (all time when None), optionally for one
    ``value``. Values with no name are left out."""
    if column not in ROLLUP_COLUMNS or (since is not None and since % DAY != 0):
        return await spend_by(store, column, since=since, value=value)
    col = rollups.c[column]
    cond: list[Any] = [rollups.c.granularity == "d", col != ""]
    if value is not None:
        cond.append(col == value)
    if since is not None:
        cond.append(rollups.c.bucket >= since)
    q = sa.select(col, sa.func.sum(rollups.c.cost_usd)).where(*cond).group_by(col)
    async with store.connect() as conn:
        rows = (await conn.execute(q)).all()
    return {str(r[0]): float(r[1] or 0.0) for r in rows}
