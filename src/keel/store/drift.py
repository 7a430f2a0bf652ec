"""Drift report queries: the reports of scheduled (and on-demand) drift checks, per
feature, newest first."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from keel.store.db import Store, row_dict
from keel.store.schema import drift_reports

KEPT_S = 90 * 86400.0  # reports older than this are deleted as new ones are written
STALE_LISTED_S = 30 * 86400.0  # a feature's latest report is listed if this recent


async def insert_report(store: Store, row: dict[str, Any]) -> int:
    d = drift_reports.c
    async with store.begin() as conn:
        result = await conn.execute(drift_reports.insert().values(**row))
        await conn.execute(drift_reports.delete().where(d.feature == row["feature"],
                                                        d.at < row["at"] - KEPT_S))
    return int(result.inserted_primary_key[0])


async def latest_reports(store: Store, *, since: float,
                         until: float) -> dict[str, dict[str, Any]]:
    """Each feature's latest report written in ``[since, until]`` (one per feature)."""
    d = drift_reports.c
    last = (sa.select(d.feature, sa.func.max(d.at).label("at"))
            .where(d.at >= since, d.at <= until).group_by(d.feature).subquery())
    q = sa.select(drift_reports).join(last, sa.and_(d.feature == last.c.feature,
                                                    d.at == last.c.at))
    async with store.connect() as conn:
        rows = (await conn.execute(q)).all()
    return {r.feature: row_dict(r) for r in rows}


async def list_reports(store: Store, feature: str, *, limit: int = 50,
                       with_report: bool = False) -> list[dict[str, Any]]:
    d = drift_reports.c
    cols = list(drift_reports.c) if with_report else [c for c in drift_reports.c
                                                      if c.name != "report"]
    q = sa.select(*cols).where(d.feature == feature).order_by(d.at.desc(), d.id.desc())
    async with store.connect() as conn:
        rows = (await conn.execute(q.limit(limit))).all()
    return [row_dict(r) for r in rows]


async def get_report(store: Store, report_id: int) -> dict[str, Any] | None:
    async with store.connect() as conn:
        row = (await conn.execute(sa.select(drift_reports)
                                  .where(drift_reports.c.id == report_id))).first()
    return row_dict(row) if row else None
