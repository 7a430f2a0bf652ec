"""Queries of held answers (``reviews``), owned by ``keel.review``.

Every change of state is one conditional UPDATE: a decision only lands on a review that is
still pending and not past its deadline, an expiry only on one that is pending and past it.
Two reviewers, or two replicas sweeping expiries, can never both change the same review:
the database lets exactly one UPDATE match (PostgreSQL re-checks the WHERE clause after
waiting for the row lock; SQLite serialises writers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from keel.store.db import Store, row_dict
from keel.store.schema import feedback, reviews

PENDING = "pending"


async def insert_review(store: Store, row: dict[str, Any]) -> None:
    async with store.begin() as conn:
        await conn.execute(reviews.insert().values(**row))


async def get_review(store: Store, review_id: str) -> dict[str, Any] | None:
    async with store.connect() as conn:
        row = (await conn.execute(
            sa.select(reviews).where(reviews.c.id == review_id))).first()
    return row_dict(row) if row else None


@dataclass(slots=True)
class ReviewFilter:
    status: str | None = None
    feature: str | None = None
    team: str | None = None


def _filtered(f: ReviewFilter) -> list[Any]:
    c = reviews.c
    cond: list[Any] = []
    if f.status is not None:
        cond.append(c.status == f.status)
    if f.feature is not None:
        cond.append(c.feature == f.feature)
    if f.team is not None:
        cond.append(c.team == f.team)
    return cond


async def count_reviews(store: Store, f: ReviewFilter, *, cap: int = 1000,
                        now: float | None = None) -> int:
    """How many reviews match, counted up to ``cap`` (a backlog count never reads the
    whole table); with ``now``, pending ones past their deadline are left out (they are
    about to expire)."""
    cond = _filtered(f)
    if now is not None:
        cond.append(sa.or_(reviews.c.status != PENDING, reviews.c.expires_at > now))
    inner = sa.select(reviews.c.id).where(*cond).limit(cap).subquery()
    async with store.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(inner)))
                   .scalar_one())


async def list_reviews(store: Store, f: ReviewFilter, *, limit: int = 50,
                       cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first. ``cursor``: the ``next_cursor`` of the previous page (its last id)."""
    c = reviews.c
    cond = _filtered(f)
    if cursor:  # after the cursor's review in (created_at, id) order
        at = sa.select(c.created_at).where(c.id == cursor).scalar_subquery()
        cond.append(sa.or_(c.created_at < at, sa.and_(c.created_at == at, c.id < cursor)))
    q = (sa.select(reviews).where(*cond).order_by(c.created_at.desc(), c.id.desc())
         .limit(limit + 1))
    async with store.connect() as conn:
        rows = [row_dict(r) for r in (await conn.execute(q)).all()]
    next_cursor = str(rows[limit - 1]["id"]) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def decide(store: Store, review_id: str, values: dict[str, Any], now: float) -> bool:
    """Set a decision (``status``, ``approved``, ``decided_by``, ...) if the review is still
    pending and not past its deadline; False if it was not (unknown, decided, expired)."""
    c = reviews.c
    async with store.begin() as conn:
        res = await conn.execute(
            reviews.update()
            .where(c.id == review_id, c.status == PENDING, c.expires_at > now)
            .values(**values))
    return bool(res.rowcount == 1)


async def expire(store: Store, now: float, review_id: str | None = None,
                 limit: int = 500) -> list[dict[str, Any]]:
    """Mark pending reviews past their deadline ``expired`` (only ``review_id``, if given);
    returns the rows this call expired -- each row is returned to exactly one caller."""
    c = reviews.c
    cond = [c.status == PENDING, c.expires_at <= now]
    if review_id is not None:
        cond.append(c.id == review_id)
    else:  # a bounded batch, oldest first; the next sweep takes the rest
        due = sa.select(c.id).where(*cond).order_by(c.created_at).limit(limit)
        cond.append(c.id.in_(due.scalar_subquery()))
    async with store.begin() as conn:
        res = await conn.execute(
            reviews.update().where(*cond).values(status="expired", decided_at=now)
            .returning(*reviews.c))
        return [row_dict(r) for r in res.all()]


async def mark_released(store: Store, review_id: str, now: float) -> bool:
    """Record the first release of an approved review; False if it was released before."""
    c = reviews.c
    async with store.begin() as conn:
        res = await conn.execute(
            reviews.update().where(c.id == review_id, c.released_at.is_(None))
            .values(released_at=now))
    return bool(res.rowcount == 1)


async def without_feedback(store: Store, statuses: Sequence[str], since: float,
                           feedback_id_prefix: str, limit: int = 100) -> list[dict[str, Any]]:
    """Reviews created since ``since`` with one of ``statuses`` whose feedback row (id
    ``feedback_id_prefix + review id``) is not stored yet (its trace was not stored when the
    review was decided)."""
    c = reviews.c
    recorded = sa.exists().where(feedback.c.id == sa.literal(feedback_id_prefix) + c.id)
    q = (sa.select(reviews)
         .where(c.status.in_(list(statuses)), c.created_at >= since, ~recorded)
         .order_by(c.created_at).limit(limit))
    async with store.connect() as conn:
        return [row_dict(r) for r in (await conn.execute(q)).all()]
