"""Human review: answers held for a person's decision before the client gets them.

A guardrail policy (or a scanner action ``review``) holds a finished answer: the gateway
calls ``ReviewService.hold`` and either waits for the decision (mode ``wait``) or answers
202 with a poll URL (mode ``async``: ``GET /v1/reviews/{id}``). A reviewer approves, edits
or rejects it (``/api/reviews``, ``keel reviews``); only the approved content, checked
against the hash the decision bound, is released. A review not decided in time expires and
is refused (fail closed). Decisions, expiries and integrity failures are in the audit log;
each decision is also reviewer feedback on the trace (thumbs, rework of an edit).
"""

from keel.review.model import (
    DECISIONS,
    REVIEW_HEADER,
    STATUSES,
    Review,
    ReviewClosed,
    ReviewIntegrity,
    ReviewRejected,
    canonical_hash,
)
from keel.review.service import ReviewService

__all__ = ["DECISIONS", "REVIEW_HEADER", "STATUSES", "Review", "ReviewClosed",
           "ReviewIntegrity", "ReviewRejected", "ReviewService", "canonical_hash"]
