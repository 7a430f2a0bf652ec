"""Notification delivery: a ``Notification`` (grouped alerts) sent to the configured
receivers (webhooks: Slack or signed JSON; email over SMTP)."""

from keel.notify.model import SEVERITIES, STATUSES, Alert, Notification, Severity, Status

__all__ = ["SEVERITIES", "STATUSES", "Alert", "Notification", "Severity", "Status"]
