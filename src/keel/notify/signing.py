"""Signing keel's JSON webhooks, and the check a receiver runs (``verify``).

Every JSON webhook carries three headers:

- ``Keel-Delivery``: the notification's id, the same on every retry of it (drop a
  duplicate you have already handled);
- ``Keel-Timestamp``: when this attempt was signed, in whole seconds since the Unix epoch;
- ``Keel-Signature``: ``v1=`` and the lowercase hex HMAC-SHA256, keyed with the receiver's
  ``secret`` (its UTF-8 bytes), of the timestamp, a dot and the raw request body:
  ``HMAC(secret, f"{timestamp}.".encode() + body)``. When the secret is being rotated
  the header may hold several ``v1=`` values separated by commas; one matching suffices.

A receiver verifies before it parses: it computes the HMAC over the body bytes exactly as
received (not a re-serialised JSON), compares in constant time, and refuses a timestamp
further than the tolerance (five minutes) from its own clock, so a captured request
cannot be replayed later. ``verify`` does all of it; it uses the standard library only, so
a receiver can import it from keel or copy this function as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

__all__ = ["DELIVERY_HEADER", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "TOLERANCE_S",
           "sign", "signature", "verify"]

DELIVERY_HEADER = "Keel-Delivery"
TIMESTAMP_HEADER = "Keel-Timestamp"
SIGNATURE_HEADER = "Keel-Signature"
TOLERANCE_S = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"{timestamp}." + body`` keyed with ``secret``."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, delivery: str, now: float | None = None) -> dict[str, str]:
    """The headers that sign ``body``: delivery id, timestamp and ``v1=`` signature."""
    timestamp = int(time.time() if now is None else now)
    return {DELIVERY_HEADER: delivery, TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: f"v1={signature(secret, timestamp, body)}"}


def verify(secret: str, body: bytes, headers: Mapping[str, str], *,
           tolerance_s: float = TOLERANCE_S, now: float | None = None) -> bool:
    """Whether ``body`` with these request ``headers`` was signed with ``secret`` within
    ``tolerance_s`` seconds of ``now`` (default: the current time). Header names are
    matched without regard to case."""
    lower = {k.lower(): v for k, v in headers.items()}
    stamp = lower.get(TIMESTAMP_HEADER.lower(), "")
    given = lower.get(SIGNATURE_HEADER.lower(), "")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        return False
    timestamp = int(stamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body)
    found = False
    for part in given.split(","):
        scheme, _, value = part.strip().partition("=")
        if scheme == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            found = True  # no early return: the time taken does not tell which matched
    return found
