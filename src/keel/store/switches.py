"""Feature kill switch queries."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from keel.store.db import Store, row_dict
from keel.store.keys import bump_counter, get_meta
from keel.store.schema import feature_switches

SWITCHES_VERSION = "feature_switches_version"


async def switches_version(store: Store) -> str:
    return await get_meta(store, SWITCHES_VERSION) or "0"


async def all_switches(store: Store) -> list[dict[str, Any]]:
    async with store.connect() as conn:
        rows = (await conn.execute(
            sa.select(feature_switches).order_by(feature_switches.c.feature))).all()
    return [row_dict(r) for r in rows]


async def set_switch(store: Store, feature: str, *, stopped: bool, reason: str | None,
                     actor: str | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Stop or start ``feature``; returns (the previous row or None, the new row)."""
    row = {"feature": feature, "stopped": stopped, "reason": reason, "actor": actor,
           "at": time.time()}
    async with store.begin() as conn:
        found = (await conn.execute(
            sa.select(feature_switches).where(feature_switches.c.feature == feature))).first()
        before = row_dict(found) if found else None
        if before is None:
            await conn.execute(feature_switches.insert().values(**row))
        else:
            await conn.execute(feature_switches.update()
                               .where(feature_switches.c.feature == feature).values(**row))
        await bump_counter(conn, SWITCHES_VERSION)
    return before, row
