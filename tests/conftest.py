"""Test fixtures: isolated settings, SQLite and PostgreSQL stores, Redis, live keel servers.

PostgreSQL and Redis tests run when the servers answer (default 127.0.0.1:5432 and
:6379; override with KEEL_TEST_POSTGRES_URL / KEEL_TEST_REDIS_URL). Without them they
are skipped with a reason, unless KEEL_TEST_REQUIRE_SERVICES=1 (CI), which makes them
mandatory. Each run creates its own PostgreSQL database and Redis key prefix, so
parallel runs never collide.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from keel.store import Store
from keel.store.schema import metadata

REQUIRE_SERVICES = os.environ.get("KEEL_TEST_REQUIRE_SERVICES") == "1"
PG_URL = os.environ.get("KEEL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("KEEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]


def _unavailable(what: str, url: str, exc: BaseException) -> None:
    reason = (f"{what} not reachable at {url.rsplit('@', 1)[-1]} ({type(exc).__name__}); "
              f"start it or set KEEL_TEST_{what.upper()}_URL to run these tests")
    if REQUIRE_SERVICES:
        pytest.fail(f"KEEL_TEST_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for name in list(os.environ):
        if name.startswith("KEEL_") and not name.startswith("KEEL_TEST_"):
            monkeypatch.delenv(name)
    # The user-level config and data directories keel falls back to: each test its own, so
    # no test reads a real ~/.config/keel/keel.yaml or shares a store in ~/.local/share/keel.
    xdg = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(xdg / "data"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of this test run's own, dropped at the end."""
    import asyncpg

    dbname = f"keel_test_{RUN_ID}"
    dsn = PG_URL

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{dbname}"'))
    except Exception as exc:  # unreachable, auth, ...
        _unavailable("postgres", PG_URL, exc)
    base = PG_URL.rsplit("/", 1)[0]
    yield f"{base}/{dbname}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:
        _unavailable("redis", REDIS_URL, exc)
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; its keys are deleted afterwards."""
    import redis

    prefix = f"keel-test:{RUN_ID}:{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty, migrated-on-demand database URL of the parametrized dialect."""
    if dialect == "sqlite":
        return f"sqlite:///{tmp_path / 'keel.db'}"
    url: str = request.getfixturevalue("postgres_url")
    asyncio.run(_reset_postgres(url))
    return url


async def _reset_postgres(url: str) -> None:
    store = Store(url)
    try:
        await store.upgrade()
        async with store.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                await conn.exec_driver_sql(f'TRUNCATE TABLE "{table.name}"')
    finally:
        await store.aclose()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    s = Store(database_url)
    await s.upgrade()
    yield s
    await s.aclose()
