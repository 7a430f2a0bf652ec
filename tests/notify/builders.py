"""Alerts and notifications for the notify tests."""

from __future__ import annotations

from datetime import UTC, datetime

from keel.notify import Alert, Notification

STARTED = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


def alert(**overrides: object) -> Alert:
    values: dict[str, object] = {
        "rule": "cost_per_request_up", "severity": "critical",
        "reason": "cost per request rose 42% against last week",
        "started_at": STARTED,
        "labels": {"feature": "summarize", "team": "support", "model": "gpt-4o"},
        "value": 0.0142, "threshold": 0.012, "baseline": 0.01,
        "links": {"console": "https://keel.example.com/costs?feature=summarize"}}
    values.update(overrides)
    return Alert(**values)  # type: ignore[arg-type]


def notification(*alerts: Alert, status: str = "firing") -> Notification:
    return Notification(group_key="feature=summarize", status=status,  # type: ignore[arg-type]
                        alerts=alerts or (alert(),), group_labels={"feature": "summarize"})
