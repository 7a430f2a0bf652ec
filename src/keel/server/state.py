"""Everything a running keel process holds, built once at start (no module globals)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.audit import AuditLog, local_user
from keel.audit.digest import TraceDigest
from keel.cache import ResponseCache
from keel.config import EvalsConfig, KeelConfig, Settings
from keel.config.extras import require_extras
from keel.errors import ConfigError
from keel.evals.schedule import EvalScheduler
from keel.gateway.calls import ModelCalls
from keel.gateway.flow import FlowParts
from keel.gateway.internal import LocalGateway
from keel.gateway.providers.base import config_providers
from keel.gateway.service import Gateway
from keel.guard.policy import config_policies
from keel.keys.service import KeyRing
from keel.limits import Limits
from keel.monitor.alerts.manager import AlertManager, replica_name
from keel.monitor.drift_schedule import DriftMonitor
from keel.notify.dispatch import Dispatcher
from keel.prompts import PromptRegistry
from keel.review import ReviewService
from keel.store import Store
from keel.store.policies import save_versions
from keel.switches import FeatureSwitches
from keel.telemetry.metrics import Metrics, TraceWriterCollector
from keel.telemetry.writer import TraceWriter

if TYPE_CHECKING:
    from keel.telemetry.otel_export import OtlpExporter

log = logging.getLogger("keel.server")
AUDIT_CHECKPOINT_INTERVAL_S = 3600.0


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
    audit: AuditLog
    digest: TraceDigest  # of the trace batches stored, flushed to the audit log each minute
    reviews: ReviewService  # answers held for a human decision
    redis: Any = None
    cache: ResponseCache | None = None
    limits: Limits | None = None
    scheduler: EvalScheduler | None = None  # when suites are scheduled
    retention_task: asyncio.Task[None] | None = None
    otlp: OtlpExporter | None = None  # with KEEL_OTLP_ENDPOINT: stored traces leave as spans
    audit_task: asyncio.Task[None] | None = None
    features: FeatureSwitches | None = None  # kill switches; the gateway checks them
    # the alert loop (evaluates each tick in keel serve) and the receivers it notifies
    alerts: AlertManager | None = None
    dispatcher: Dispatcher | None = None
    drift: DriftMonitor | None = None  # drift checks per feature (scheduled in keel serve)
    shutdown_problems: list[str] = field(default_factory=list)  # filled by aclose()
    # what every request's flow uses (the gateway, reviews; limits and cache once started)
    flow: FlowParts = field(init=False)

    def __post_init__(self) -> None:
        self.flow = FlowParts(self.gateway, self.reviews, self.limits, self.cache)

    @classmethod
    def build(cls, settings: Settings, config: KeelConfig) -> AppState:
        # every optional package the settings ask for (keel.config.extras), and every
        # provider's kind (built-in or plugin) and options, before anything is opened
        require_extras(settings)
        config_providers(config, settings.config)
        store = Store(settings.resolved_database_url())
        writer = TraceWriter(
            store, spill_dir=Path(settings.data_dir) / "spill",
            max_queue=settings.trace_queue_size, batch_size=settings.trace_batch_size,
            flush_interval_s=settings.trace_flush_interval_s,
            hold_max=settings.trace_hold_max, journal=settings.trace_journal,
            journal_fsync_s=settings.trace_journal_fsync_s,
        )
        metrics = Metrics(config)  # label values from the config only
        TraceWriterCollector(writer.health).register(metrics.registry)
        otlp: OtlpExporter | None = None
        if settings.otlp_endpoint:  # opentelemetry-proto (keel[otel]) only then
            from keel.telemetry.otel_export import OtlpExporter

            otlp = OtlpExporter(settings, config, metrics)
            writer.on_stored = otlp.submit
        audit = AuditLog.from_settings(store, settings)
        digest = TraceDigest()
        writer.on_stored_rows = digest.observe
        # Policies compiled once, here: the gateway applies them, the audit log records them.
        policies = config_policies(config, settings.config)
        try:
            gateway = Gateway(settings, config, writer, metrics, policies)
        except ConfigError as exc:  # a plugin provider's constructor failed: name the file
            raise ConfigError(f"{settings.config}: {exc.message}") from exc
        gateway.switches = features = FeatureSwitches(store, audit=audit)
        dispatcher = Dispatcher(config.receivers) if config.receivers else None
        return cls(
            settings=settings, config=config, store=store,
            keys=KeyRing(store, master_key=settings.master_key), writer=writer, metrics=metrics,
            gateway=gateway, prompts=PromptRegistry(store, audit=audit), audit=audit,
            digest=digest, otlp=otlp, features=features,
            reviews=ReviewService(store, audit), dispatcher=dispatcher,
            alerts=AlertManager(store, config, dispatcher, public_url=settings.public_url),
            drift=DriftMonitor(store, config, replica=replica_name()),
        )

    async def start(self, *, migrate: bool = True, schedule: bool = True) -> None:
        """Start everything; ``schedule``: also the daily eval schedule (``keel serve`` only:
        a CLI command that starts keel must not run or claim scheduled suites)."""
        if migrate:
            await self.store.upgrade()
        try:  # recorded when it differs from the last config recorded
            await self.audit.record_config(self.config, self.settings.config,
                                           policies=self.gateway.policies.versions(),
                                           actor=local_user())
        except Exception:
            log.exception("could not record the config in the audit log")
        if self.gateway.policies:  # every version a trace may name can be read back
            await save_versions(self.store, self.gateway.policies.stored_forms())
        await self.keys.start(self.settings.refresh_interval_s)
        await self.prompts.start(self.settings.refresh_interval_s)
        if self.features is not None:
            await self.features.start(self.settings.refresh_interval_s)
        if self.otlp is not None:
            await self.otlp.start()
        await self.writer.start()
        if self.settings.redis_url:
            from redis.asyncio import Redis  # installed: build() checked (keel[redis])
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
        self.flow.limits, self.flow.cache = self.limits, self.cache
        from keel.store.retention import retention_loop, rules_from

        rules = rules_from(self.config.features)
        if schedule and rules:  # keel serve: apply features' retention every hour
            self.retention_task = asyncio.create_task(
                retention_loop(self.store, rules, on_purge=self.audit.record_purge),
                name="keel-retention")
        self.audit_task = asyncio.create_task(self._audit_loop(), name="keel-audit")
        if schedule:  # keel serve: expire overdue reviews, record late reviewer feedback
            self.reviews.start(self.settings.refresh_interval_s)
        if schedule and self.config.evals.schedule:
            self.scheduler = self.eval_scheduler(self.config.evals,
                                                 Path(self.settings.config).parent)
            self.scheduler.start()
        if self.dispatcher is not None:
            await self.dispatcher.start()
        if schedule and self.alerts is not None and self.alerts.rules \
                and self.config.alerts.evaluate:  # keel serve: one replica per tick
            self.alerts.start()
        if schedule and self.drift is not None and self.config.drift.evaluate:
            self.drift.start()

    def local_gateway(self, feature: str = "eval") -> LocalGateway:
        """This process's gateway for calls from inside keel, as team ``eval``."""
        return LocalGateway(self.flow, feature=feature)

    def eval_scheduler(self, config: EvalsConfig, base_dir: Path) -> EvalScheduler:
        """A scheduler of ``config``'s suites (files relative to ``base_dir``), calling
        models through this process's gateway."""

        def calls_for(feature: str) -> ModelCalls:
            return self.local_gateway(feature)

        return EvalScheduler(self.store, self.prompts, calls_for, config, base_dir)

    async def _audit_loop(self, interval_s: float = 60.0) -> None:
        """Record the digests of stored trace batches each ``interval_s``; write a
        checkpoint hourly if entries are not covered yet (appends also checkpoint every
        KEEL_AUDIT_CHECKPOINT_EVERY entries)."""
        last_checkpoint = time.monotonic()
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.digest.flush(self.audit)
                if time.monotonic() - last_checkpoint >= AUDIT_CHECKPOINT_INTERVAL_S:
                    await self.audit.checkpoint()
                    last_checkpoint = time.monotonic()
            except Exception:
                log.exception("audit log upkeep failed; will try again")

    async def _close_audit(self) -> None:
        if self.audit_task is not None:
            self.audit_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.audit_task
            self.audit_task = None
        try:  # the last batches, and a checkpoint covering everything recorded
            await self.digest.flush(self.audit)
            await self.audit.checkpoint()
        except Exception:
            log.exception("could not write the last audit entries")

    async def aclose(self) -> None:
        """Graceful stop: providers closed, every trace written, keys flushed, store closed.

        Never raises: each step runs even when an earlier one failed, and what went wrong
        is kept in ``shutdown_problems`` (``keel serve`` then exits non-zero)."""
        steps: list[tuple[str, Any]] = [
            ("eval scheduler", self.scheduler.aclose if self.scheduler is not None else None),
            ("alerts", self.alerts.aclose if self.alerts is not None else None),
            ("drift checks", self.drift.aclose if self.drift is not None else None),
            # after the alert loop: the notifications it handed over get their grace time
            ("notifications", self.dispatcher.close if self.dispatcher is not None else None),
            ("reviews", self.reviews.aclose),
            ("retention", self._close_retention),
            ("gateway", self.gateway.aclose),
            ("limits", self.limits.aclose if self.limits is not None else None),
            ("cache", self.cache.aclose if self.cache is not None else None),
            ("trace writer", self.writer.close),
            ("audit log", self._close_audit),  # after the writer: its last batches digested
            # after the writer: it hands over the last batches
            ("OTLP export", self.otlp.aclose if self.otlp is not None else None),
            ("keys", self.keys.aclose),
            ("prompts", self.prompts.aclose),
            ("features", self.features.aclose if self.features is not None else None),
        ]
        for name, close in steps:
            if close is None:
                continue
            try:
                await close()
            except Exception as exc:
                log.exception("stopping the %s failed", name)
                self.shutdown_problems.append(f"{name}: {type(exc).__name__}: {exc}")
        if self.writer.undrained:
            self.shutdown_problems.append(
                f"trace writer: {self.writer.undrained} traces not stored (kept in "
                f"{self.writer.spill_dir} for the next start where possible)")
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()
        try:
            await self.store.aclose()
        except Exception as exc:
            log.exception("closing the store failed")
            self.shutdown_problems.append(f"store: {type(exc).__name__}: {exc}")

    async def _close_retention(self) -> None:
        if self.retention_task is not None:
            self.retention_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.retention_task
