"""The few store reads the console needs that no feature package offers: small, indexed or
bounded by the rollups' size, never a scan of the traces."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from keel.monitor.measures import Window
from keel.store import Store
from keel.store.db import row_dict
from keel.store.schema import eval_runs, reviews, rollups

__all__ = ["evaluated_features", "prompt_features", "reviews_of"]


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


async def prompt_features(store: Store, name: str, since: float, until: float, *,
                          feature: str | None = None, team: str | None = None,
                          model: str | None = None, limit: int = 500) -> dict[str, list[str]]:
    """Which features served each version of prompt ``name`` between ``since`` and
    ``until`` (``name@version`` -> feature names), from the rollups of the granularity
    ``keel.monitor.measures.summary`` reads for that window; at most ``limit`` pairs."""
    w = Window.aligned(since, until)
    r = rollups.c
    q = (sa.select(r.prompt, r.feature).distinct()
         .where(r.granularity == w.granularity, r.bucket >= w.since, r.bucket < w.until,
                r.prompt.startswith(name + "@", autoescape=True))
         .order_by(r.prompt, r.feature).limit(limit))
    for column, value in ((r.feature, feature), (r.team, team), (r.model, model)):
        if value is not None:
            q = q.where(column == value)
    out: dict[str, list[str]] = {}
    async with store.connect() as conn:
        for prompt, served_by in (await conn.execute(q)).all():
            out.setdefault(str(prompt), []).append(str(served_by))
    return out
