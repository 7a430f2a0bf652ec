"""The few store reads the console needs that no feature package offers: small, indexed or
bounded by the rollups' size, never a scan of the traces."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from keel.store import Store
from keel.store.db import row_dict
from keel.store.schema import eval_runs, reviews, rollups

__all__ = ["evaluated_features", "reviews_of"]


async def evaluated_features(store: Store, since: float, until: float) -> set[str]:
    """Features under an eval suite: those that served a prompt an eval run covered between
    ``since`` and ``until`` (the day rollups say which prompts each feature served)."""
    r = rollups.c
    served = (sa.select(r.feature, r.prompt).distinct()
              .where(r.granularity == "d", r.bucket >= since - 86400, r.bucket < until,
                     r.prompt != ""))
    runs = (sa.select(eval_runs.c.prompt_name).distinct()
            .where(eval_runs.c.started_at >= since, eval_runs.c.started_at < until,
                   eval_runs.c.prompt_name.is_not(None)))
    async with store.connect() as conn:
        evaluated = {name for (name,) in (await conn.execute(runs)).all()}
        if not evaluated:
            return set()
        rows = (await conn.execute(served)).all()
    return {feature for feature, prompt in rows
            if feature and prompt.rsplit("@", 1)[0] in evaluated}


async def reviews_of(store: Store, trace_id: str) -> list[dict[str, Any]]:
    """The reviews that held the answer of ``trace_id`` (by the reviews' trace index)."""
    q = sa.select(reviews).where(reviews.c.trace_id == trace_id).order_by(reviews.c.created_at)
    async with store.connect() as conn:
        return [row_dict(r) for r in (await conn.execute(q)).all()]
