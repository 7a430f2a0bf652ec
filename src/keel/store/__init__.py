"""Persistence: tables, migrations and the queries each feature owns."""

from keel.store.db import Store, async_url

__all__ = ["Store", "async_url"]
