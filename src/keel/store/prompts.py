"""Prompt registry queries: versions are insert-only; labels move; every move is an event."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from keel.store.db import Store, row_dict
from keel.store.keys import bump_counter, get_meta
from keel.store.schema import prompt_events, prompt_labels, prompt_versions

PROMPTS_VERSION = "prompts_version"


async def registry_version(store: Store) -> str:
    return await get_meta(store, PROMPTS_VERSION) or "0"


async def insert_version(store: Store, name: str, spec_json: str, content_hash: str,
                         message: str | None, author: str | None) -> tuple[int, bool]:
    """Returns (version, created). The same content as the latest version is not re-added."""
    async with store.begin() as conn:
        latest = (await conn.execute(
            sa.select(prompt_versions.c.version, prompt_versions.c.content_hash)
            .where(prompt_versions.c.name == name)
            .order_by(prompt_versions.c.version.desc()).limit(1))).first()
        if latest is not None and latest[1] == content_hash:
            return int(latest[0]), False
        version = int(latest[0]) + 1 if latest is not None else 1
        now = time.time()
        await conn.execute(prompt_versions.insert().values(
            name=name, version=version, spec=spec_json, content_hash=content_hash,
            message=message, author=author, created_at=now))
        await conn.execute(prompt_events.insert().values(
            name=name, action="push", to_version=version, actor=author, reason=message,
            at=now))
        await bump_counter(conn, PROMPTS_VERSION)
        return version, True


async def move_label(store: Store, name: str, label: str, version: int, actor: str | None,
                     action: str = "label", reason: str | None = None) -> int | None:
    """Point ``label`` at ``version``; returns the version it pointed to before."""
    async with store.begin() as conn:
        old = (await conn.execute(sa.select(prompt_labels.c.version).where(
            prompt_labels.c.name == name, prompt_labels.c.label == label))).first()
        now = time.time()
        if old is None:
            await conn.execute(prompt_labels.insert().values(
                name=name, label=label, version=version, updated_at=now, updated_by=actor))
        else:
            await conn.execute(prompt_labels.update().where(
                prompt_labels.c.name == name, prompt_labels.c.label == label).values(
                version=version, updated_at=now, updated_by=actor))
        await conn.execute(prompt_events.insert().values(
            name=name, action=action, label=label,
            from_version=int(old[0]) if old else None, to_version=version, actor=actor,
            reason=reason, at=now))
        await bump_counter(conn, PROMPTS_VERSION)
        return int(old[0]) if old else None


async def all_versions(store: Store) -> list[dict[str, Any]]:
    q = sa.select(prompt_versions).order_by(prompt_versions.c.name, prompt_versions.c.version)
    async with store.connect() as conn:
        return [row_dict(r) for r in (await conn.execute(q)).all()]


async def all_labels(store: Store) -> list[dict[str, Any]]:
    async with store.connect() as conn:
        return [row_dict(r) for r in (await conn.execute(sa.select(prompt_labels))).all()]


async def label_history(store: Store, name: str, label: str) -> list[dict[str, Any]]:
    """Moves of a label, newest first."""
    q = (sa.select(prompt_events).where(
        prompt_events.c.name == name, prompt_events.c.label == label,
        prompt_events.c.action.in_(("label", "rollback")))
         .order_by(prompt_events.c.id.desc()))
    async with store.connect() as conn:
        return [row_dict(r) for r in (await conn.execute(q)).all()]


async def events(store: Store, name: str) -> list[dict[str, Any]]:
    q = sa.select(prompt_events).where(prompt_events.c.name == name).order_by(
        prompt_events.c.id)
    async with store.connect() as conn:
        return [row_dict(r) for r in (await conn.execute(q)).all()]


async def recent_moves(store: Store, name: str, limit: int = 50) -> list[dict[str, Any]]:
    """The latest moves of ``name``'s labels (moves and rollbacks), newest first, at most
    ``limit`` (by the events' name index)."""
    e = prompt_events.c
    q = (sa.select(prompt_events).where(e.name == name, e.action.in_(("label", "rollback")))
         .order_by(e.id.desc()).limit(limit))
    async with store.connect() as conn:
        return [row_dict(r) for r in (await conn.execute(q)).all()]


async def last_events(store: Store, limit: int = 1000) -> dict[str, dict[str, Any]]:
    """Each prompt's latest event (a push, a label move or a rollback), for the ``limit``
    most recently changed prompts, by name."""
    e = prompt_events.c
    latest = (sa.select(sa.func.max(e.id).label("id")).group_by(e.name)
              .order_by(sa.func.max(e.id).desc()).limit(limit).subquery())
    q = sa.select(prompt_events).join(latest, e.id == latest.c.id)
    async with store.connect() as conn:
        return {str(r["name"]): r for r in (row_dict(x) for x in (await conn.execute(q)).all())}
