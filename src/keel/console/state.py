"""What the console reads from a running keel: the parts of the process's state its pages
use, named as a protocol so the console depends on them and not on the server that holds
them (the server's ``AppState`` has all of them)."""

from __future__ import annotations

from typing import Protocol

from keel.audit import AuditLog
from keel.config import KeelConfig, Settings
from keel.gateway.service import Gateway
from keel.keys.service import KeyRing
from keel.limits import Limits
from keel.monitor.alerts.manager import AlertManager
from keel.monitor.drift_schedule import DriftMonitor
from keel.notify.dispatch import Dispatcher
from keel.prompts import PromptRegistry
from keel.review import ReviewService
from keel.store import Store
from keel.switches import FeatureSwitches
from keel.telemetry.writer import TraceWriter

__all__ = ["ConsoleState"]


class ConsoleState(Protocol):
    settings: Settings
    config: KeelConfig
    store: Store
    keys: KeyRing
    prompts: PromptRegistry
    audit: AuditLog
    reviews: ReviewService
    limits: Limits | None
    features: FeatureSwitches | None
    writer: TraceWriter  # traces answered a moment ago, not stored yet
    gateway: Gateway  # models, routes and policies as loaded
    alerts: AlertManager | None  # the alert loop (evaluate now)
    dispatcher: Dispatcher | None  # the receivers' delivery state
    drift: DriftMonitor | None  # drift checks (check now)
