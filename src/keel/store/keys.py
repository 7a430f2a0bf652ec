"""API key and meta queries."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from keel.store.db import Store, row_dict
from keel.store.schema import api_keys, meta

KEYS_VERSION = "keys_version"


async def get_meta(store: Store, key: str) -> str | None:
    async with store.connect() as conn:
        row = (await conn.execute(sa.select(meta.c.value).where(meta.c.key == key))).first()
    return str(row[0]) if row else None


async def set_meta(store: Store, key: str, value: str, conn: Any = None) -> None:
    async def _do(c: Any) -> None:
        updated = await c.execute(meta.update().where(meta.c.key == key).values(value=value))
        if updated.rowcount == 0:
            await c.execute(meta.insert().values(key=key, value=value))

    if conn is not None:
        await _do(conn)
        return
    async with store.begin() as c:
        await _do(c)


async def set_master_hash(store: Store, key: str, value: str) -> None:
    """Store the admin key hash and bump the keys version, so servers reload it."""
    async with store.begin() as conn:
        await set_meta(store, key, value, conn)
        await _bump_keys_version(conn)


async def bump_counter(conn: Any, key: str) -> None:
    """Advance a version counter in ``keel_meta`` (inside the caller's transaction), so
    every replica polling it reloads what it caches."""
    updated = await conn.execute(
        meta.update().where(meta.c.key == key)
        .values(value=sa.cast(sa.cast(meta.c.value, sa.Integer) + 1, sa.Text))
    )
    if updated.rowcount == 0:
        await conn.execute(meta.insert().values(key=key, value="1"))


async def _bump_keys_version(conn: Any) -> None:
    await bump_counter(conn, KEYS_VERSION)


async def insert_key(store: Store, row: dict[str, Any]) -> None:
    async with store.begin() as conn:
        await conn.execute(api_keys.insert().values(**row))
        await _bump_keys_version(conn)


async def revoke_key(store: Store, key_id: str) -> bool:
    async with store.begin() as conn:
        res = await conn.execute(
            api_keys.update()
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )
        if res.rowcount:
            await _bump_keys_version(conn)
        return bool(res.rowcount)


async def list_keys(store: Store, *, include_revoked: bool = True) -> list[dict[str, Any]]:
    q = sa.select(api_keys).order_by(api_keys.c.created_at)
    if not include_revoked:
        q = q.where(api_keys.c.revoked_at.is_(None))
    async with store.connect() as conn:
        return [row_dict(r) for r in (await conn.execute(q)).all()]


async def keys_version(store: Store) -> str:
    return await get_meta(store, KEYS_VERSION) or "0"


async def touch_keys(store: Store, last_used: dict[str, float]) -> None:
    if not last_used:
        return
    async with store.begin() as conn:
        await conn.execute(
            api_keys.update().where(api_keys.c.id == sa.bindparam("kid"))
            .values(last_used_at=sa.bindparam("ts")),
            [{"kid": k, "ts": ts} for k, ts in last_used.items()],
        )
