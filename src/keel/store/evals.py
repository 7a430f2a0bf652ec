"""Eval run queries: a run row, its per-case results (written in batches as they arrive),
the result cache, regression events and schedule claims."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from keel.store.db import Store, row_dict
from keel.store.schema import eval_cache, eval_events, eval_results, eval_runs, eval_schedule_claims

PAGE = 1000


async def create_run(store: Store, row: dict[str, Any]) -> None:
    async with store.begin() as conn:
        await conn.execute(eval_runs.insert().values(**row))


async def add_results(store: Store, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        async with store.begin() as conn:
            await conn.execute(eval_results.insert(), list(rows))


async def finish_run(store: Store, run_id: str, values: dict[str, Any]) -> None:
    async with store.begin() as conn:
        await conn.execute(eval_runs.update().where(eval_runs.c.id == run_id).values(**values))


async def get_run(store: Store, run_id: str) -> dict[str, Any] | None:
    async with store.connect() as conn:
        row = (await conn.execute(sa.select(eval_runs).where(eval_runs.c.id == run_id))).first()
    return row_dict(row) if row else None


async def find_runs(store: Store, prefix: str) -> list[str]:
    """Run ids starting with ``prefix`` (so a short id can name a run), at most 2."""
    prefix = prefix.lower()
    if not prefix or len(prefix) > 32 or any(c not in "0123456789abcdef" for c in prefix):
        return []  # run ids are hex: anything else (incl. LIKE wildcards) names none
    q = sa.select(eval_runs.c.id).where(eval_runs.c.id.like(prefix + "%")).limit(2)
    async with store.connect() as conn:
        return [str(r[0]) for r in (await conn.execute(q)).all()]


async def list_runs(store: Store, *, suite: str | None = None, group_id: str | None = None,
                    limit: int = 50) -> list[dict[str, Any]]:
    q = sa.select(eval_runs).order_by(eval_runs.c.started_at.desc()).limit(limit)
    if suite is not None:
        q = q.where(eval_runs.c.suite == suite)
    if group_id is not None:
        q = q.where(eval_runs.c.group_id == group_id)
    async with store.connect() as conn:
        return [row_dict(r) for r in (await conn.execute(q)).all()]


async def iter_results(store: Store, run_id: str,
                       page: int = PAGE) -> AsyncIterator[dict[str, Any]]:
    """A run's results ordered by (case_idx, repeat), a page at a time (bounded memory)."""
    after = (-1, -1)
    c = eval_results.c
    while True:
        q = (sa.select(eval_results).where(
            c.run_id == run_id,
            sa.or_(c.case_idx > after[0], sa.and_(c.case_idx == after[0], c.repeat > after[1])))
            .order_by(c.case_idx, c.repeat).limit(page))
        async with store.connect() as conn:
            rows = [row_dict(r) for r in (await conn.execute(q)).all()]
        for row in rows:
            yield row
        if len(rows) < page:
            return
        after = (rows[-1]["case_idx"], rows[-1]["repeat"])


async def latency_percentiles(store: Store, run_id: str,
                              quantiles: Iterable[float]) -> dict[float, float | None]:
    """Exact latency quantiles of a run's answered executions (nearest rank; a cached
    answer counts with the latency it had when made), computed in the database so the
    runner never holds every latency in memory."""
    c = eval_results.c
    where = sa.and_(c.run_id == run_id, c.output.is_not(None))
    async with store.connect() as conn:
        n = int((await conn.execute(sa.select(sa.func.count()).where(where))).scalar() or 0)
        out: dict[float, float | None] = {}
        for qtl in quantiles:
            if n == 0:
                out[qtl] = None
                continue
            rank = min(n - 1, max(0, int(qtl * n + 0.999999) - 1))
            q = sa.select(c.latency_ms).where(where).order_by(c.latency_ms).offset(rank).limit(1)
            out[qtl] = float((await conn.execute(q)).scalar() or 0.0)
    return out


async def cache_get(store: Store, keys: Sequence[str]) -> dict[str, str]:
    if not keys:
        return {}
    q = sa.select(eval_cache.c.key, eval_cache.c.reply).where(eval_cache.c.key.in_(list(keys)))
    async with store.connect() as conn:
        return {str(k): str(v) for k, v in (await conn.execute(q)).all()}


async def cache_put(store: Store, items: Sequence[tuple[str, str]]) -> None:
    """Insert cached replies; a key written meanwhile (another run) is kept as it is."""
    if not items:
        return
    now = time.time()
    existing = await cache_get(store, [k for k, _ in items])
    rows = [{"key": k, "reply": v, "created_at": now} for k, v in dict(items).items()
            if k not in existing]
    if not rows:
        return
    try:
        async with store.begin() as conn:
            await conn.execute(eval_cache.insert(), rows)
    except IntegrityError:  # a concurrent writer won the race for some key: insert one by one
        for row in rows:
            try:
                async with store.begin() as conn:
                    await conn.execute(eval_cache.insert().values(**row))
            except IntegrityError:
                pass


async def add_event(store: Store, kind: str, suite: str, run_id: str | None,
                    detail: str) -> None:
    async with store.begin() as conn:
        await conn.execute(eval_events.insert().values(at=time.time(), kind=kind, suite=suite,
                                                       run_id=run_id, detail=detail))


async def list_events(store: Store, *, since: float | None = None, until: float | None = None,
                      limit: int = 100) -> list[dict[str, Any]]:
    q = sa.select(eval_events).order_by(eval_events.c.id.desc()).limit(limit)
    if since is not None:
        q = q.where(eval_events.c.at >= since)
    if until is not None:
        q = q.where(eval_events.c.at < until)
    async with store.connect() as conn:
        return [row_dict(r) for r in (await conn.execute(q)).all()]


async def claim_slot(store: Store, suite: str, slot: str, by: str) -> bool:
    """True for exactly one caller per (suite, slot), across replicas."""
    try:
        async with store.begin() as conn:
            await conn.execute(eval_schedule_claims.insert().values(
                suite=suite, slot=slot, claimed_at=time.time(), claimed_by=by))
        return True
    except IntegrityError:
        return False


async def page_results(store: Store, run_id: str, *, status: str | None = None,
                       after: tuple[int, int] = (-1, -1),
                       limit: int = 100) -> list[dict[str, Any]]:
    """One page of a run's results after (case_idx, repeat), optionally of one status."""
    c = eval_results.c
    q = (sa.select(eval_results).where(
        c.run_id == run_id,
        sa.or_(c.case_idx > after[0], sa.and_(c.case_idx == after[0], c.repeat > after[1])))
        .order_by(c.case_idx, c.repeat).limit(limit))
    if status is not None:
        q = q.where(c.status == status)
    async with store.connect() as conn:
        return [row_dict(r) for r in (await conn.execute(q)).all()]


# What a list of runs shows: the run row without its config and summary.
LISTED = ("id", "suite", "group_id", "role", "target", "prompt_name", "prompt_version",
          "model", "dataset_name", "dataset_version", "status", "started_at", "finished_at",
          "cases", "executions", "passed", "failed", "errored", "cost_usd")


def _not_baseline() -> Any:
    return sa.or_(eval_runs.c.role.is_(None), eval_runs.c.role != "baseline")


async def recent_suites(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """The ``limit`` suites run most recently: ``{suite, last_run_at, runs}``, newest first.
    A gate's baseline runs are not counted (they measure what runs today, not the suite's
    target)."""
    c = eval_runs.c
    last = sa.func.max(c.started_at).label("last_run_at")
    q = (sa.select(c.suite, last, sa.func.count().label("runs")).where(_not_baseline())
         .group_by(c.suite).order_by(last.desc(), c.suite).limit(limit))
    async with store.connect() as conn:
        return [row_dict(r) for r in (await conn.execute(q)).all()]


async def latest_runs_of(store: Store, suites: Sequence[str],
                         per_suite: int = 20) -> list[dict[str, Any]]:
    """The latest ``per_suite`` runs of each of ``suites`` (baselines left out), newest
    first within a suite: the columns in :data:`LISTED`, and the ``summary`` of each
    suite's latest run only (None for the others)."""
    if not suites:
        return []
    c = eval_runs.c
    rank = sa.func.row_number().over(partition_by=c.suite,
                                     order_by=(c.started_at.desc(), c.id)).label("n")
    ranked = (sa.select(*[c[name] for name in LISTED], c.summary, rank)
              .where(c.suite.in_(list(suites)), _not_baseline()).subquery())
    r = ranked.c
    q = (sa.select(*[r[name] for name in LISTED],
                   sa.case((r.n == 1, r.summary), else_=sa.null()).label("summary"))
         .where(r.n <= per_suite).order_by(r.suite, r.n))
    async with store.connect() as conn:
        return [row_dict(x) for x in (await conn.execute(q)).all()]
