"""What a way of delivering is to the dispatcher: a ``Sender`` whose ``send`` returns once
the receiver took the notification and raises ``DeliveryFailed`` when it did not, saying
whether trying again may help."""

from __future__ import annotations

from typing import Protocol

from keel.notify.model import Notification


class DeliveryFailed(Exception):
    """One attempt failed. ``retry``: whether a later attempt may succeed (a timeout, a
    refused connection, a 5xx, 408 or 429) or not (the receiver refuses the content, a
    4xx). ``retry_after``: seconds the receiver asked to wait, if it said."""

    def __init__(self, message: str, *, retry: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after


class Sender(Protocol):
    name: str

    async def send(self, notification: Notification) -> None:
        """Deliver once; raise ``DeliveryFailed`` (anything else counts as retryable)."""
        ...

    async def close(self) -> None: ...
