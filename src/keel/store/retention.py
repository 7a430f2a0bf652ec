"""Retention: per feature, message content and numeric trace rows expire separately.

``content_days`` deletes the stored request/response bodies of older traces (the numbers
stay); ``rows_days`` deletes older trace rows themselves (with their bodies). Rollups are
never touched, so dashboards keep their history. Deletes run in batches, each its own
transaction, so a large purge never holds long locks.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from keel.store.db import Store
from keel.store.schema import trace_payloads, traces

BATCH = 5000
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Rule:
    feature: str
    content_days: float | None
    rows_days: float | None


@dataclass
class PurgeReport:
    dry_run: bool
    at: float
    features: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def total(self) -> dict[str, int]:
        return {"payloads": sum(f["payloads"] for f in self.features.values()),
                "traces": sum(f["traces"] for f in self.features.values())}


async def _count(store: Store, q: Any) -> int:
    async with store.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(
            q.subquery()))).scalar() or 0)


async def _delete_in_batches(store: Store, ids_query: Any, delete: Any) -> int:
    done = 0
    while True:
        async with store.begin() as conn:
            ids = [r[0] for r in (await conn.execute(ids_query.limit(BATCH))).all()]
            if not ids:
                return done
            for stmt in delete(ids):
                await conn.execute(stmt)
        done += len(ids)


def rules_from(features: Any) -> list[Rule]:
    """The rules of the configured features (``features[].retention``)."""
    return [Rule(f.name, f.retention.content_days, f.retention.rows_days) for f in features
            if f.retention.content_days is not None or f.retention.rows_days is not None]


async def purge(store: Store, rules: list[Rule], *, dry_run: bool = False,
                now: float | None = None) -> PurgeReport:
    now = now if now is not None else time.time()
    report = PurgeReport(dry_run=dry_run, at=now)
    for rule in rules:
        entry: dict[str, Any] = {"payloads": 0, "traces": 0, "content_before": None,
                                 "rows_before": None}
        if rule.rows_days is not None:
            cutoff = now - rule.rows_days * DAY
            entry["rows_before"] = cutoff
            ids = sa.select(traces.c.id).where(traces.c.feature == rule.feature,
                                               traces.c.start_time < cutoff)
            if dry_run:
                entry["traces"] = await _count(store, ids)
            else:
                entry["traces"] = await _delete_in_batches(store, ids, lambda i: (
                    trace_payloads.delete().where(trace_payloads.c.trace_id.in_(i)),
                    traces.delete().where(traces.c.id.in_(i))))
        if rule.content_days is not None:
            cutoff = now - rule.content_days * DAY
            entry["content_before"] = cutoff
            ids = (sa.select(trace_payloads.c.trace_id)
                   .join(traces, traces.c.id == trace_payloads.c.trace_id)
                   .where(traces.c.feature == rule.feature, traces.c.start_time < cutoff))
            if dry_run and entry["rows_before"] is not None:  # not those the rows rule takes
                ids = ids.where(traces.c.start_time >= entry["rows_before"])
            if dry_run:
                entry["payloads"] = await _count(store, ids)
            else:
                entry["payloads"] = await _delete_in_batches(store, ids, lambda i: (
                    trace_payloads.delete().where(trace_payloads.c.trace_id.in_(i)),))
        report.features[rule.feature] = entry
    return report


async def retention_loop(store: Store, rules: list[Rule], interval_s: float = 3600.0,
                         on_purge: Callable[[PurgeReport], Awaitable[Any]] | None = None
                         ) -> None:
    """Purge now and then every ``interval_s`` (inside ``keel serve``); failures are logged
    and retried at the next round. ``on_purge``: called with each report that deleted
    something (the audit log records it)."""
    import asyncio
    import logging

    log = logging.getLogger("keel.retention")
    while True:
        try:
            report = await purge(store, rules)
            if any(report.total.values()):
                log.warning("retention purge: deleted %d trace rows and the content of %d "
                            "traces", report.total["traces"], report.total["payloads"])
                if on_purge is not None:
                    await on_purge(report)
        except Exception:
            log.exception("retention purge failed; will try again")
        await asyncio.sleep(interval_s)
