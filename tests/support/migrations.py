"""Testing a migration on a database as an older keel left it: an empty database of the
parametrized dialect (fixture ``empty_database_url``, with a ``dialect`` parameter) and
``migrate(store, revision)`` to bring it to one revision."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command

from keel.store import Store
from keel.store.db import _alembic_config
from tests.conftest import RUN_ID

__all__ = ["empty_database_url", "migrate"]


@pytest.fixture
def empty_database_url(dialect: str, tmp_path: Path,
                       request: pytest.FixtureRequest) -> Iterator[str]:
    """A database with no tables at all, of the parametrized dialect."""
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    import asyncpg

    base: str = request.getfixturevalue("postgres_url")
    name = f"keel_test_{RUN_ID}_{uuid.uuid4().hex[:6]}"
    server = base.rsplit("/", 1)[0]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(f"{server}/postgres", timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield f"{server}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def migrate(store: Store, revision: str) -> None:
    """Upgrade ``store`` to ``revision`` (not beyond)."""
    def run(connection: Any) -> None:
        cfg = _alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with store.engine.begin() as conn:
        await conn.run_sync(run)
