"""The store: an async SQLAlchemy engine over SQLite (default) or PostgreSQL (asyncpg, the
keel[postgres] extra).

SQLite runs in WAL mode with a busy timeout; keel writes through one writer task, so
reads stay concurrent. Migrations (alembic) run through ``Store.upgrade``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from keel.errors import ConfigError

SQLITE_PRAGMAS = (
    ("journal_mode", "WAL"),
    ("synchronous", "NORMAL"),
    ("busy_timeout", "5000"),
    ("foreign_keys", "ON"),
)

_HERE = Path(__file__).parent


def async_url(url: str) -> str:
    """Map user-facing URLs to the async drivers keel uses."""
    if url.startswith("sqlite:///") or url == "sqlite://":
        return "sqlite+aiosqlite" + url[len("sqlite"):]
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite+aiosqlite:", "postgresql+asyncpg:")):
        return url
    raise ConfigError(
        f"KEEL_DATABASE_URL: unsupported URL '{url.split('://')[0]}://...'; "
        "use sqlite:///path/to/keel.db or postgresql://user@host:5432/dbname"
    )


def _alembic_config() -> AlembicConfig:
    cfg = AlembicConfig(str(_HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    return cfg


class Store:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        aurl = async_url(url)
        self.dialect = "sqlite" if aurl.startswith("sqlite") else "postgresql"
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            path = aurl.split(":///", 1)[1] if ":///" in aurl else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 5}
        else:
            # here, not at the top: keel.config.extras binds redis's names (imports redis)
            from keel.config.extras import POSTGRES, import_extra

            import_extra(POSTGRES, "KEEL_DATABASE_URL is a PostgreSQL URL")
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(aurl, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self.sql_cache: dict[str, str] = {}  # driver-level SQL built once (see traces.py)

    async def upgrade(self, revision: str = "head") -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade, revision)

    async def current_revision(self) -> str | None:
        async with self.engine.connect() as conn:
            has = await conn.run_sync(lambda c: sa.inspect(c).has_table("alembic_version"))
            if not has:
                return None
            row = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).first()
            return str(row[0]) if row else None

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    def begin(self) -> Any:
        """A write transaction. On SQLite, writers are serialized in-process."""
        return _WriteTx(self)

    def connect(self) -> Any:
        return self.engine.connect()

    async def aclose(self) -> None:
        await self.engine.dispose()


class _WriteTx:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._cm: Any = None

    async def __aenter__(self) -> AsyncConnection:
        if self.store._write_lock is not None:
            await self.store._write_lock.acquire()
        try:
            self._cm = self.store.engine.begin()
            return await self._cm.__aenter__()  # type: ignore[no-any-return]
        except BaseException:
            if self.store._write_lock is not None:
                self.store._write_lock.release()
            raise

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self._cm.__aexit__(*exc)
        finally:
            if self.store._write_lock is not None:
                self.store._write_lock.release()


def row_dict(row: Any) -> dict[str, Any]:
    """A result row as a plain dict with plain ``str`` keys (safe for orjson)."""
    return {str(k): v for k, v in row._mapping.items()}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    for name, value in SQLITE_PRAGMAS:
        cur.execute(f"PRAGMA {name}={value}")
    cur.close()


def _upgrade(connection: Connection, revision: str) -> None:
    cfg = _alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)
