"""Guardrail policy versions: every version of every policy keel has run with, so the
version named on a trace can always be read back."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import orjson
import sqlalchemy as sa

from keel.store.db import Store, row_dict
from keel.store.schema import policy_versions


async def save_versions(store: Store, versions: Iterable[tuple[str, str, str]]) -> int:
    """Store the ``(name, version, spec as canonical JSON)`` not stored yet; returns how many
    were new. Replicas starting together may race: a version another one stored first is
    simply skipped."""
    versions = list(versions)
    if not versions:
        return 0
    c = policy_versions.c
    new = 0
    async with store.begin() as conn:
        have = {(r[0], r[1]) for r in await conn.execute(
            sa.select(c.name, c.version).where(c.name.in_([name for name, _, _ in versions])))}
    for name, version, spec in versions:
        if (name, version) in have:
            continue
        try:
            async with store.begin() as conn:
                await conn.execute(policy_versions.insert().values(
                    name=name, version=version, spec=spec, first_seen=time.time()))
            new += 1
        except sa.exc.IntegrityError:
            pass
    return new


def _public(row: Any) -> dict[str, Any]:
    out = row_dict(row)
    out["spec"] = orjson.loads(out["spec"])
    return out


async def list_versions(store: Store, name: str) -> list[dict[str, Any]]:
    """Every stored version of policy ``name``, newest first."""
    c = policy_versions.c
    async with store.connect() as conn:
        rows = await conn.execute(sa.select(policy_versions).where(c.name == name)
                                  .order_by(c.first_seen.desc()))
        return [_public(r) for r in rows]


async def get_version(store: Store, name: str, version: str) -> dict[str, Any] | None:
    c = policy_versions.c
    async with store.connect() as conn:
        row = (await conn.execute(sa.select(policy_versions).where(
            c.name == name, c.version == version))).first()
    return _public(row) if row is not None else None
