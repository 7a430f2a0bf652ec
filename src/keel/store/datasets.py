"""Dataset queries: a version is written once (cases in batches), then only read."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import sqlalchemy as sa

from keel.store.db import Store, row_dict
from keel.store.schema import dataset_cases, dataset_versions

BATCH = 1000


async def latest_version(store: Store, name: str) -> dict[str, Any] | None:
    q = (sa.select(dataset_versions).where(dataset_versions.c.name == name)
         .order_by(dataset_versions.c.version.desc()).limit(1))
    async with store.connect() as conn:
        row = (await conn.execute(q)).first()
    return row_dict(row) if row else None


async def get_version(store: Store, name: str, version: int) -> dict[str, Any] | None:
    q = sa.select(dataset_versions).where(dataset_versions.c.name == name,
                                          dataset_versions.c.version == version)
    async with store.connect() as conn:
        row = (await conn.execute(q)).first()
    return row_dict(row) if row else None


async def create_version(store: Store, name: str, cases: Iterable[str], content_hash: str,
                         source: str | None, message: str | None) -> tuple[int, int]:
    """Write a new version from serialized cases (in one transaction); (version, count)."""
    async with store.begin() as conn:
        last = (await conn.execute(
            sa.select(sa.func.max(dataset_versions.c.version))
            .where(dataset_versions.c.name == name))).scalar()
        version = int(last or 0) + 1
        count = 0
        batch: list[dict[str, Any]] = []
        for data in cases:
            batch.append({"name": name, "version": version, "idx": count, "data": data})
            count += 1
            if len(batch) >= BATCH:
                await conn.execute(dataset_cases.insert(), batch)
                batch = []
        if batch:
            await conn.execute(dataset_cases.insert(), batch)
        await conn.execute(dataset_versions.insert().values(
            name=name, version=version, cases=count, content_hash=content_hash,
            source=source, message=message, created_at=time.time()))
        return version, count


async def list_versions(store: Store) -> list[dict[str, Any]]:
    q = sa.select(dataset_versions).order_by(dataset_versions.c.name,
                                             dataset_versions.c.version)
    async with store.connect() as conn:
        return [row_dict(r) for r in (await conn.execute(q)).all()]


async def iter_cases(store: Store, name: str, version: int,
                     page: int = BATCH) -> AsyncIterator[tuple[int, str]]:
    """(idx, data JSON) in order, a page at a time: bounded memory for large datasets."""
    after = -1
    while True:
        q = (sa.select(dataset_cases.c.idx, dataset_cases.c.data)
             .where(dataset_cases.c.name == name, dataset_cases.c.version == version,
                    dataset_cases.c.idx > after)
             .order_by(dataset_cases.c.idx).limit(page))
        async with store.connect() as conn:
            rows = (await conn.execute(q)).all()
        for idx, data in rows:
            yield int(idx), str(data)
        if len(rows) < page:
            return
        after = int(rows[-1][0])
