"""Everything a running keel process holds, built once at start (no module globals)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.cache import ResponseCache
from keel.config import KeelConfig, Settings
from keel.gateway.service import Gateway
from keel.keys.service import KeyRing
from keel.limits import Limits
from keel.prompts import PromptRegistry
from keel.store import Store
from keel.telemetry.metrics import Metrics
from keel.telemetry.otel_export import OtlpExporter
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
    prompts: PromptRegistry
    redis: Any = None
    cache: ResponseCache | None = None
    limits: Limits | None = None
    scheduler: Any = None  # keel.evals.schedule.EvalScheduler, when suites are scheduled
    retention_task: asyncio.Task[None] | None = None
    otlp: OtlpExporter | None = None  # with KEEL_OTLP_ENDPOINT: stored traces leave as spans

    @classmethod
    def build(cls, settings: Settings, config: KeelConfig) -> AppState:
        store = Store(settings.resolved_database_url())
        writer = TraceWriter(
            store, spill_dir=Path(settings.data_dir) / "spill",
            max_queue=settings.trace_queue_size, batch_size=settings.trace_batch_size,
            flush_interval_s=settings.trace_flush_interval_s,
        )
        metrics = Metrics()
        otlp = OtlpExporter(settings, config, metrics) if settings.otlp_endpoint else None
        if otlp is not None:
            writer.on_stored = otlp.submit
        return cls(
            settings=settings, config=config, store=store,
            keys=KeyRing(store, master_key=settings.master_key), writer=writer, metrics=metrics,
            gateway=Gateway(settings, config, writer, metrics), prompts=PromptRegistry(store),
            otlp=otlp,
        )

    async def start(self, *, migrate: bool = True, schedule: bool = True) -> None:
        """Start everything; ``schedule``: also the daily eval schedule (``keel serve`` only:
        a CLI command that starts keel must not run or claim scheduled suites)."""
        if migrate:
            await self.store.upgrade()
        await self.keys.start(self.settings.refresh_interval_s)
        await self.prompts.start(self.settings.refresh_interval_s)
        if self.otlp is not None:
            await self.otlp.start()
        await self.writer.start()
        if self.settings.redis_url:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            # Short timeouts and no retry loop: a slow or absent Redis must degrade keel
            # (each component has its documented fallback), not stall requests.
            self.redis = Redis.from_url(self.settings.redis_url, socket_timeout=0.5,
                                        socket_connect_timeout=0.5,
                                        retry=Retry(NoBackoff(), 0))
        await self.gateway.start(self.redis)
        # The semantic index is searched in-process: keep it small enough to stay fast.
        self.cache = ResponseCache(self.redis, prefix=self.settings.redis_prefix,
                                   semantic_max_entries=2000)
        self.limits = Limits(self.config, self.store, self.redis,
                             prefix=self.settings.redis_prefix)
        await self.limits.start()
        from keel.store.retention import retention_loop, rules_from

        rules = rules_from(self.config.features)
        if schedule and rules:  # keel serve: apply features' retention every hour
            self.retention_task = asyncio.create_task(retention_loop(self.store, rules),
                                                      name="keel-retention")
        if schedule and self.config.evals.schedule:
            from keel.evals.schedule import EvalScheduler

            self.scheduler = EvalScheduler(self, self.config.evals,
                                           Path(self.settings.config).parent)
            self.scheduler.start()

    async def aclose(self) -> None:
        """Graceful stop: providers closed, every trace written, keys flushed, store closed."""
        if self.scheduler is not None:
            await self.scheduler.aclose()
        if self.retention_task is not None:
            self.retention_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.retention_task
        await self.gateway.aclose()
        if self.limits is not None:
            await self.limits.aclose()
        if self.cache is not None:
            await self.cache.aclose()
        await self.writer.close()
        if self.otlp is not None:
            await self.otlp.aclose()  # after the writer: it hands over the last batches
        await self.keys.aclose()
        await self.prompts.aclose()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()
        await self.store.aclose()

