"""Alembic environment. keel runs migrations itself (``keel db upgrade`` and on start),
passing a synchronous connection taken from its async engine via ``run_sync``."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from keel.store.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = config.attributes.get("connection")
if _connection is None or context.is_offline_mode():
    raise SystemExit("keel runs its migrations itself: use `keel db upgrade`")
_run(_connection)
