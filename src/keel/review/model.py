"""Held answers as values: the ``Review`` record, its errors, hashes and checks."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from keel.errors import InvalidRequest, KeelError, PermissionDenied
from keel.feedback.service import MAX_TEXT
from keel.text import answer_text
from keel.types import JSON, new_trace_id

DECISIONS = ("approve", "edit", "reject")
MODES = ("wait", "async")
STATUSES = ("pending", "approved", "rejected", "expired")
REVIEW_HEADER = "x-keel-review-id"
MAX_REASON = 2000
MAX_CONTENT = MAX_TEXT  # an edit is also stored as feedback's corrected_text
MAX_REVIEWER = 128


class ReviewClosed(InvalidRequest):
    """The review was already decided or expired: nothing more can be decided on it."""

    status = 409
    code = "review_closed"


class ReviewRejected(PermissionDenied):
    """The held answer is not released: rejected, expired, or not decided yet."""

    code = "review_rejected"


class ReviewIntegrity(KeelError):
    """The stored answer does not match the hash its decision bound: never released."""

    code = "review_integrity"


def canonical_hash(value: Any) -> str:
    """SHA-256 hex of ``value``'s canonical JSON (orjson, keys sorted)."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _loads(text: str | None) -> Any:
    """Stored JSON text, or None (absent or damaged: a damaged answer fails its hash)."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def new_review_id() -> str:
    """``rv_`` and 29 hex characters that sort by creation time (ms clock first)."""
    return "rv_" + new_trace_id()[:29]


@dataclass(frozen=True, slots=True)
class Review:
    """One held answer, as stored (JSON columns decoded)."""

    id: str
    trace_id: str
    key_id: str | None
    team: str | None
    feature: str | None
    policy: str | None
    policy_version: str | None
    reasons: list[JSON]
    mode: str
    status: str
    request: JSON | None
    content: JSON | None  # the held chat.completion
    content_hash: str
    approved: JSON | None  # what the decision approved for release
    approved_hash: str | None
    decided_by: str | None
    decision_reason: str | None
    created_at: float
    expires_at: float
    decided_at: float | None
    released_at: float | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Review:
        reasons = row["reasons"]
        return cls(
            id=row["id"], trace_id=row["trace_id"], key_id=row["key_id"], team=row["team"],
            feature=row["feature"], policy=row["policy"],
            policy_version=row["policy_version"],
            reasons=list(reasons) if isinstance(reasons, list) else [],
            mode=row["mode"], status=row["status"], request=_loads(row["request"]),
            content=_loads(row["content"]), content_hash=row["content_hash"],
            approved=_loads(row["approved"]), approved_hash=row["approved_hash"],
            decided_by=row["decided_by"], decision_reason=row["decision_reason"],
            created_at=float(row["created_at"]), expires_at=float(row["expires_at"]),
            decided_at=row["decided_at"], released_at=row["released_at"])

    @property
    def decision(self) -> str | None:
        """approve | edit | reject, or None (pending or expired)."""
        if self.status == "rejected":
            return "reject"
        if self.status == "approved":
            return "approve" if self.approved_hash == self.content_hash else "edit"
        return None

    @property
    def timeout_s(self) -> float:
        return self.expires_at - self.created_at

    def to_json(self, *, detail: bool = False) -> JSON:
        """The review for APIs and the CLI; ``detail``: with the request, the held and the
        approved answer and their hashes."""
        out: JSON = {
            "id": self.id, "object": "keel.review", "status": self.status,
            "mode": self.mode, "trace_id": self.trace_id, "key_id": self.key_id,
            "team": self.team, "feature": self.feature, "policy": self.policy,
            "policy_version": self.policy_version, "reasons": self.reasons,
            "created_at": self.created_at, "expires_at": self.expires_at,
            "answer": _preview(answer_text(self.content)),
            "decision": None if self.decided_at is None else {
                "decision": self.decision, "by": self.decided_by,
                "reason": self.decision_reason, "at": self.decided_at},
            "released_at": self.released_at,
        }
        if detail:
            out.update(answer=answer_text(self.content), request=self.request,
                       content=self.content, content_hash=self.content_hash,
                       approved=self.approved, approved_hash=self.approved_hash)
        return out


def _preview(text: str | None, n: int = 200) -> str | None:
    if text is None or len(text) <= n:
        return text
    return text[:n - 1] + "…"


def edited(completion: JSON | None, text: str) -> JSON:
    """``completion`` with ``choices[0].message.content`` replaced by ``text``."""
    out = copy.deepcopy(completion) if isinstance(completion, dict) else None
    choices = out.get("choices") if out is not None else None
    message = (choices[0].get("message") if isinstance(choices, list) and choices
               and isinstance(choices[0], dict) else None)
    if out is None or not isinstance(message, dict):
        raise InvalidRequest("the held answer has no choices[0].message to edit; approve or "
                             "reject it", param="content")
    message["content"] = text
    return out


def check_decision(decision: Any, reason: Any,
                   content: Any) -> tuple[str, str | None, str | None]:
    """A decision's fields, checked: (decision, reason stripped or None, content)."""
    if decision not in DECISIONS:
        raise InvalidRequest(f"'decision' must be one of {', '.join(DECISIONS)}; got "
                             f"{decision!r}", param="decision")
    if reason is not None and not isinstance(reason, str):
        raise InvalidRequest("'reason' must be a string", param="reason")
    reason = reason.strip() if reason else None
    if reason is not None and len(reason) > MAX_REASON:
        raise InvalidRequest(f"'reason' must be at most {MAX_REASON} characters",
                             param="reason")
    if decision == "reject" and not reason:
        raise InvalidRequest("'reason' is required to reject: it is what the client is told",
                             param="reason")
    if decision == "edit":
        if not isinstance(content, str) or not content.strip():
            raise InvalidRequest("'content' is required to edit: the text to release in "
                                 "place of the held answer", param="content")
        if len(content) > MAX_CONTENT:
            raise InvalidRequest(f"'content' is {len(content)} characters, over the limit of "
                                 f"{MAX_CONTENT}", param="content")
    elif content is not None:
        raise InvalidRequest(f"'content' is only for an edit, not {decision}; use "
                             "\"decision\": \"edit\" to change the answer", param="content")
    return decision, reason, content


def closed_error(review: Review) -> ReviewClosed:
    if review.status == "expired":
        why = f"it expired: no decision within {review.timeout_s:g} s"
    elif review.status == "pending":  # the update matched nothing yet it is pending: a
        # clock stepped back between the read and the write
        return ReviewClosed(f"review '{review.id}' could not be decided just now; try again",
                            param="review_id")
    else:
        why = f"it was {review.status} by {review.decided_by or 'unknown'}"
    return ReviewClosed(f"review '{review.id}' is closed ({review.status}): {why}",
                        param="review_id")


def refused_error(review: Review) -> ReviewRejected:
    if review.status == "rejected":
        why = (f"rejected by reviewer {review.decided_by or 'unknown'}: "
               f"{review.decision_reason or 'no reason given'}")
    elif review.status == "expired":
        why = (f"expired: no decision within {review.timeout_s:g} s, so it is not released "
               "(review timeouts fail closed)")
    else:
        why = f"{review.status}: not approved (yet)"
    return ReviewRejected(f"the answer was held for human review (review '{review.id}') and "
                          f"is not released: {why}", headers={REVIEW_HEADER: review.id})
