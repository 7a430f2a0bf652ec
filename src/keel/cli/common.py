"""What the commands share: running a coroutine against the configured store."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import click
import orjson

from keel.config import Settings
from keel.errors import KeelError
from keel.store import Store

T = TypeVar("T")


def with_store(fn: Callable[[Store], Awaitable[T]]) -> T:
    """Open KEEL_DATABASE_URL (migrated), run ``fn``, close; a KeelError exits 2 with its
    message."""

    async def go() -> T:
        store = Store(Settings().resolved_database_url())
        try:
            await store.upgrade()
            return await fn(store)
        finally:
            await store.aclose()

    try:
        return asyncio.run(go())
    except KeelError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    except OSError as exc:  # a report path that cannot be written, an unreachable store...
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def listed(rows: Sequence[Any], as_json: bool, empty: str) -> bool:
    """The output of a listing command that needs no table: with ``--json`` one JSON object
    per line; with no rows, ``empty``. True when that was all there was to print."""
    if as_json:
        for r in rows:
            click.echo(orjson.dumps(r).decode())
        return True
    if not rows:
        click.echo(empty)
        return True
    return False
