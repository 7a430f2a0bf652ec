"""Everything a running keel process holds, built once at start (no module globals)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.config import KeelConfig, Settings
from keel.gateway.service import Gateway
from keel.keys.service import KeyRing
from keel.store import Store
from keel.telemetry.metrics import Metrics
from keel.telemetry.writer import TraceWriter


@dataclass
class AppState:
    settings: Settings
    config: KeelConfig
    store: Store
    keys: KeyRing
    writer: TraceWriter
    metrics: Metrics
    gateway: Gateway
    redis: Any = None

    @classmethod
    def build(cls, settings: Settings, config: KeelConfig) -> AppState:
        store = Store(settings.resolved_database_url())
        writer = TraceWriter(
            store, spill_dir=Path(settings.data_dir) / "spill",
            max_queue=settings.trace_queue_size, batch_size=settings.trace_batch_size,
            flush_interval_s=settings.trace_flush_interval_s,
        )
        metrics = Metrics()
        return cls(
            settings=settings, config=config, store=store,
            keys=KeyRing(store, master_key=settings.master_key), writer=writer, metrics=metrics,
            gateway=Gateway(settings, config, writer, metrics),
        )

    async def start(self, *, migrate: bool = True) -> None:
        if migrate:
            await self.store.upgrade()
        await self.keys.start(self.settings.refresh_interval_s)
        await self.writer.start()
        await self.gateway.start()
        if self.settings.redis_url:
            from redis.asyncio import Redis

            self.redis = Redis.from_url(self.settings.redis_url)

    async def aclose(self) -> None:
        """Graceful stop: providers closed, every trace written, keys flushed, store closed."""
        await self.gateway.aclose()
        await self.writer.close()
        await self.keys.aclose()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()
        await self.store.aclose()

