"""What is delivered: a ``Notification`` (a group of alerts that fire or resolve together)
and its ``Alert``s. Plain data: the notify package knows nothing of how alerts are
evaluated, only what a person needs to read about them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Severity = Literal["warning", "critical"]
Status = Literal["firing", "resolved"]
SEVERITIES: tuple[Severity, ...] = ("warning", "critical")
STATUSES: tuple[Status, ...] = ("firing", "resolved")


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert rule's finding for one set of labels.

    ``value`` is what was measured, ``threshold`` the limit it crossed and ``baseline`` what
    it was before (either may be absent); ``reason`` says it in plain language ("cost per
    request rose 42% against last week"). ``links`` maps a name to a URL (``console``: the
    page to look at). ``ended_at`` is set once the alert has resolved."""

    rule: str
    severity: Severity
    reason: str
    started_at: datetime
    labels: Mapping[str, str] = field(default_factory=dict)
    value: float | None = None
    threshold: float | None = None
    baseline: float | None = None
    links: Mapping[str, str] = field(default_factory=dict)
    ended_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"Alert: severity must be one of {SEVERITIES}, "
                             f"got {self.severity!r}")
        if not self.rule:
            raise ValueError("Alert: rule must not be empty")

    @property
    def status(self) -> Status:
        return "firing" if self.ended_at is None else "resolved"


@dataclass(frozen=True, slots=True)
class Notification:
    """A grouped set of alerts sent together to a receiver.

    ``group_key`` identifies the group across notifications (the same key for the first
    firing, a repeat and the resolution); ``group_labels`` are the labels its alerts share
    (by which they were grouped). ``id`` is unique per notification: webhooks send it as
    ``Keel-Delivery`` so that a receiver can drop the duplicate a retry may produce."""

    group_key: str
    status: Status
    alerts: tuple[Alert, ...]
    group_labels: Mapping[str, str] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Notification: status must be one of {STATUSES}, "
                             f"got {self.status!r}")
        if not self.alerts:
            raise ValueError("Notification: needs at least one alert")
        if not isinstance(self.alerts, tuple):
            object.__setattr__(self, "alerts", tuple(self.alerts))

    @property
    def severity(self) -> Severity:
        """The gravest severity among the alerts."""
        return "critical" if any(a.severity == "critical" for a in self.alerts) else "warning"

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "firing")

    @property
    def resolved(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "resolved")

    def title(self) -> str:
        """One line: ``[FIRING:2] critical: cost_per_request_up (feature=summarize)``."""
        rules = sorted({a.rule for a in self.alerts})
        what = rules[0] if len(rules) == 1 else f"{rules[0]} and {len(rules) - 1} more rules"
        count = len(self.firing) if self.status == "firing" else len(self.alerts)
        labels = ", ".join(f"{k}={v}" for k, v in sorted(self.group_labels.items()))
        head = f"[{self.status.upper()}:{count}] {self.severity}: {what}"
        return f"{head} ({labels})" if labels else head
