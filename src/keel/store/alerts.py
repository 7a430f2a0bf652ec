"""Alert state queries: tracks, transitions, silences, notification groups, tick claims.
Transitions and silences that ended are kept ``EVENTS_KEPT_S`` (each tick deletes older
ones, down their time indexes); tick claims ``TICKS_KEPT_S``.

One replica evaluates each tick (``claim_tick``: the first to insert the tick's row wins,
the same SQL on SQLite and PostgreSQL), and writes what it found in one transaction
(``save_tick``): the tracks it stepped, the transitions, the groups it notified, the tick
finished. A crash in between leaves the tick claimed and unfinished; the next tick reads
the tracks as they were and carries on.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from keel.store.db import Store, row_dict
from keel.store.schema import (
    alert_events,
    alert_groups,
    alert_silences,
    alert_tracks,
    schedule_ticks,
)

TICKS_KEPT_S = 7 * 86400.0
EVENTS_KEPT_S = 90 * 86400.0  # transitions and ended silences are kept this long
_CHUNK = 400


async def claim_tick(store: Store, tick: float, by: str, job: str = "alerts") -> bool:
    """Whether this process runs ``job``'s ``tick`` (False: another replica claimed it)."""
    t = schedule_ticks.c
    try:
        async with store.begin() as conn:
            await conn.execute(schedule_ticks.insert().values(job=job, tick=tick, claimed_by=by,
                                                              claimed_at=time.time()))
            await conn.execute(schedule_ticks.delete().where(t.job == job,
                                                             t.tick < tick - TICKS_KEPT_S))
    except IntegrityError:
        return False
    return True


async def last_ticks(store: Store, limit: int = 20, job: str = "alerts") -> list[dict[str, Any]]:
    t = schedule_ticks.c
    async with store.connect() as conn:
        rows = (await conn.execute(sa.select(schedule_ticks).where(t.job == job)
                                   .order_by(t.tick.desc()).limit(limit))).all()
    return [row_dict(r) for r in rows]


async def load_tracks(store: Store) -> list[dict[str, Any]]:
    async with store.connect() as conn:
        rows = (await conn.execute(sa.select(alert_tracks).order_by(alert_tracks.c.key))).all()
    return [row_dict(r) for r in rows]


async def load_groups(store: Store) -> dict[str, dict[str, Any]]:
    async with store.connect() as conn:
        rows = (await conn.execute(sa.select(alert_groups))).all()
    return {r.group_key: row_dict(r) for r in rows}


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


async def save_tick(store: Store, tick: float, *, tracks: list[dict[str, Any]],
                    dropped: Iterable[str], events: list[dict[str, Any]],
                    groups: list[dict[str, Any]], series: int, error: str | None = None,
                    job: str = "alerts") -> None:
    """Write one evaluation's results in one transaction: ``tracks`` (alert_tracks rows)
    replace the rows of their keys, ``dropped`` keys are deleted (rules no longer
    configured), ``events`` appended, ``groups`` replace theirs, the tick marked finished."""
    dropped = list(dropped)
    async with store.begin() as conn:
        keys = [t["key"] for t in tracks] + dropped
        for chunk in _chunks(keys):
            await conn.execute(alert_tracks.delete().where(alert_tracks.c.key.in_(chunk)))
        for chunk in _chunks(tracks):
            await conn.execute(alert_tracks.insert(), chunk)
        for chunk in _chunks(events):
            await conn.execute(alert_events.insert(), chunk)
        await conn.execute(alert_events.delete().where(alert_events.c.at
                                                       < tick - EVENTS_KEPT_S))
        await conn.execute(alert_silences.delete().where(alert_silences.c.ends_at
                                                         < tick - EVENTS_KEPT_S))
        names = [g["group_key"] for g in groups]
        for chunk in _chunks(names):
            await conn.execute(alert_groups.delete().where(alert_groups.c.group_key.in_(chunk)))
        for chunk in _chunks(groups):
            await conn.execute(alert_groups.insert(), chunk)
        await finish_tick(conn, job, tick, series=series, error=error)


async def finish_tick(conn: Any, job: str, tick: float, *, series: int,
                      error: str | None) -> None:
    t = schedule_ticks.c
    await conn.execute(schedule_ticks.update().where(t.job == job, t.tick == tick).values(
        finished_at=time.time(), series=series, error=error))


async def list_events(store: Store, *, key: str | None = None, since: float | None = None,
                      limit: int = 100) -> list[dict[str, Any]]:
    """Transitions, newest first."""
    e = alert_events.c
    q = sa.select(alert_events).order_by(e.at.desc(), e.id.desc()).limit(limit)
    if key is not None:
        q = q.where(e.key == key)
    if since is not None:
        q = q.where(e.at >= since)
    async with store.connect() as conn:
        rows = (await conn.execute(q)).all()
    return [row_dict(r) for r in rows]


async def add_silence(store: Store, row: dict[str, Any]) -> None:
    async with store.begin() as conn:
        await conn.execute(alert_silences.insert().values(**row))


async def get_silence(store: Store, silence_id: str) -> dict[str, Any] | None:
    async with store.connect() as conn:
        row = (await conn.execute(sa.select(alert_silences)
                                  .where(alert_silences.c.id == silence_id))).first()
    return row_dict(row) if row else None


async def list_silences(store: Store, *, active_at: float | None = None,
                        limit: int = 200) -> list[dict[str, Any]]:
    """Silences, latest end first; ``active_at``: only those in force then (started, not
    ended, not lifted)."""
    s = alert_silences.c
    q = sa.select(alert_silences).order_by(s.ends_at.desc(), s.id).limit(limit)
    if active_at is not None:
        q = q.where(s.starts_at <= active_at, s.ends_at > active_at, s.lifted_at.is_(None))
    async with store.connect() as conn:
        rows = (await conn.execute(q)).all()
    return [row_dict(r) for r in rows]


async def lift_silence(store: Store, silence_id: str, *, by: str,
                       at: float) -> dict[str, Any] | None:
    """End a silence now; the silence as it is afterwards (None: there is none). Lifting one
    already lifted or over changes nothing."""
    s = alert_silences.c
    async with store.begin() as conn:
        await conn.execute(alert_silences.update()
                           .where(s.id == silence_id, s.lifted_at.is_(None), s.ends_at > at)
                           .values(lifted_at=at, lifted_by=by))
        row = (await conn.execute(sa.select(alert_silences).where(s.id == silence_id))).first()
    return row_dict(row) if row else None
