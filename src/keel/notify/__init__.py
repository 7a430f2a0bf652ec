"""Notification delivery: a ``Notification`` (a group of alerts) sent to the receivers of
the config's ``receivers:`` section, webhooks (a Slack message, or keel's JSON document
signed with HMAC-SHA256: see ``keel.notify.signing``) and email over SMTP, by a
``Dispatcher`` that queues, retries with backoff and reports each receiver's state.

It knows nothing of how alerts are evaluated: the monitor above it builds notifications.
"""

from keel.notify.dispatch import DEFAULT_BACKOFF, Dispatcher, ReceiverState
from keel.notify.model import SEVERITIES, STATUSES, Alert, Notification, Severity, Status
from keel.notify.signing import sign, verify
from keel.notify.transport import DeliveryFailed, Sender

__all__ = ["DEFAULT_BACKOFF", "SEVERITIES", "STATUSES", "Alert", "DeliveryFailed",
           "Dispatcher", "Notification", "ReceiverState", "Sender", "Severity", "Status",
           "sign", "verify"]
