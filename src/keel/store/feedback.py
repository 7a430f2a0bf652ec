"""Feedback and business-outcome queries.

Each item is stored and added to the rollups in one transaction. Inserts are idempotent by
(team, id) (``ON CONFLICT DO NOTHING ... RETURNING``): when the team already used the id
nothing is written, nothing is counted, and the team's stored row is returned for the caller
to compare. Ids are per team, so another team's use of an id never meets this one's. An item
without a team (an outcome the admin key records for a feature across teams) is stored
under ``NO_TEAM`` and read back with ``team`` None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from keel.store.db import Store, row_dict
from keel.store.rollups import Deltas, apply
from keel.store.schema import feedback, outcomes, traces

NO_TEAM = ""  # the team column is part of the key: an item of no team is stored under ''
_ID = ["team", "id"]


def _read(row: Any) -> dict[str, Any]:
    out = row_dict(row)
    if out.get("team") == NO_TEAM:
        out["team"] = None
    return out


def _insert_new(store: Store, table: sa.Table, row: dict[str, Any]) -> Any:
    if store.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return (pg_insert(table).values(**row).on_conflict_do_nothing(index_elements=_ID)
                .returning(table.c.id))
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return (sqlite_insert(table).values(**row).on_conflict_do_nothing(index_elements=_ID)
            .returning(table.c.id))


async def _store_once(store: Store, table: sa.Table, row: dict[str, Any],
                      deltas: Deltas) -> tuple[dict[str, Any], bool]:
    team = row.get("team") or NO_TEAM
    async with store.begin() as conn:
        inserted = (await conn.execute(_insert_new(store, table, {**row, "team": team}))).first()
        if inserted is None:
            existing = (await conn.execute(sa.select(table).where(
                table.c.team == team, table.c.id == row["id"]))).first()
            if existing is None:  # cannot happen: the conflicting row is committed
                raise RuntimeError(f"{table.name} {row['id']!r} of team {team!r} conflicted "
                                   "but is not stored")
            return _read(existing), False
        await apply(conn, store, deltas)
    return {**row, "team": row.get("team") or None}, True


async def insert_feedback(store: Store, row: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Store one feedback row and roll it up (at its trace's time). Returns (the stored
    row, whether it was new); an id the row's team used before is returned untouched and not
    counted."""
    d = Deltas()
    d.add_feedback(row)
    return await _store_once(store, feedback, row, d)


async def list_feedback(store: Store, trace_id: str) -> list[dict[str, Any]]:
    q = (sa.select(feedback).where(feedback.c.trace_id == trace_id)
         .order_by(feedback.c.at, feedback.c.team, feedback.c.id))
    async with store.connect() as conn:
        return [_read(r) for r in (await conn.execute(q)).all()]


async def insert_outcome(store: Store, row: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Store one business outcome and roll it up (at its own time, per feature and name)."""
    d = Deltas()
    d.add_outcome(row)
    return await _store_once(store, outcomes, row, d)


@dataclass
class OutcomeFilter:
    feature: str | None = None
    team: str | None = None
    name: str | None = None
    since: float | None = None
    until: float | None = None


async def list_outcomes(store: Store, f: OutcomeFilter, limit: int = 100,
                        ) -> list[dict[str, Any]]:
    """Newest first."""
    q = sa.select(outcomes)
    if f.feature is not None:
        q = q.where(outcomes.c.feature == f.feature)
    if f.team is not None:
        q = q.where(outcomes.c.team == f.team)
    if f.name is not None:
        q = q.where(outcomes.c.name == f.name)
    if f.since is not None:
        q = q.where(outcomes.c.at >= f.since)
    if f.until is not None:
        q = q.where(outcomes.c.at < f.until)
    q = q.order_by(outcomes.c.at.desc(), outcomes.c.id.desc(), outcomes.c.team).limit(limit)
    async with store.connect() as conn:
        return [_read(r) for r in (await conn.execute(q)).all()]


async def trace_teams(store: Store, trace_ids: Sequence[str]) -> dict[str, str | None]:
    """The team of each of ``trace_ids`` that exists (missing ids are absent)."""
    out: dict[str, str | None] = {}
    ids = list(dict.fromkeys(trace_ids))
    async with store.connect() as conn:
        for i in range(0, len(ids), 500):
            q = sa.select(traces.c.id, traces.c.team).where(traces.c.id.in_(ids[i:i + 500]))
            out.update({str(r[0]): r[1] for r in (await conn.execute(q)).all()})
    return out
