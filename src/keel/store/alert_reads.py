"""What alert rules read besides the rollups: the review queue as it is now, and the latest
finished eval run of each suite. Bounded: pending reviews are read grouped (the status
index), eval runs of one window only."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from keel.store.db import Store
from keel.store.schema import eval_runs, reviews

EVAL_RUNS_READ = 5000


async def pending_reviews(store: Store) -> list[dict[str, Any]]:
    """Per (feature, team): the answers waiting for a reviewer and when the oldest came."""
    r = reviews.c
    q = (sa.select(r.feature, r.team, sa.func.count().label("n"),
                   sa.func.min(r.created_at).label("oldest"))
         .where(r.status == "pending").group_by(r.feature, r.team))
    async with store.connect() as conn:
        rows = (await conn.execute(q)).all()
    return [{"feature": x.feature, "team": x.team, "n": int(x.n), "oldest": float(x.oldest)}
            for x in rows]


async def latest_eval_runs(store: Store, since: float, until: float) -> dict[str, dict[str, Any]]:
    """Per suite, its latest run that finished in ``[since, until]``."""
    e = eval_runs.c
    q = (sa.select(e.id, e.suite, e.finished_at, e.executions, e.passed, e.failed, e.errored)
         .where(e.status == "done", e.finished_at >= since, e.finished_at <= until)
         .order_by(e.finished_at.desc()).limit(EVAL_RUNS_READ))
    out: dict[str, dict[str, Any]] = {}
    async with store.connect() as conn:
        for x in (await conn.execute(q)).all():
            out.setdefault(x.suite, dict(x._mapping))
    return out
