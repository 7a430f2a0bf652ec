"""The review service: holding answers, deciding them, waiting for and releasing them.

State of a review::

    pending --decide(approve|edit)--> approved --release--> (released_at set)
       |    --decide(reject)--------> rejected
       +------ expires_at passes ---> expired      (timeouts fail closed)

Each transition is a conditional UPDATE (``keel.store.reviews``), so it happens once
whatever the number of reviewers or replicas; the loser of a race gets a 409
``review_closed``. Only content whose SHA-256 (of its canonical JSON) matches the
``approved_hash`` set by the decision is ever released.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from keel import feedback as fb
from keel.audit import AuditLog
from keel.errors import InvalidRequest, NotFound
from keel.polling import Poller
from keel.review.model import (
    MAX_REVIEWER,
    MODES,
    REVIEW_HEADER,
    STATUSES,
    Review,
    ReviewIntegrity,
    canonical_hash,
    check_decision,
    closed_error,
    dumps,
    edited,
    new_review_id,
    refused_error,
)
from keel.store import Store
from keel.store import reviews as q
from keel.store.traces import get_trace
from keel.text import answer_text
from keel.types import JSON, Principal

log = logging.getLogger("keel.review")

ACTIONS = {"approve": "review.approved", "edit": "review.edited", "reject": "review.rejected"}
SYSTEM_ACTOR = "keel"  # the audit actor of expiries and integrity failures
FEEDBACK_PREFIX = "review-"  # + review id: the id of the reviewer's feedback row
FEEDBACK_WINDOW_S = 3600.0  # how long after a hold its feedback waits for the trace

# the feedback service's callers are keys; a decision is made by keel on a reviewer's behalf
_KEEL = Principal(key_id=None, team="keel", feature=None, models=None, feature_override=True,
                  is_admin=True)


class ReviewService:
    """Held answers in ``store``; decisions, expiries and integrity failures go to
    ``audit``. ``poll_s``: how often ``wait`` re-reads the store for decisions made by
    other processes. ``clock`` (epoch seconds): when holds, decisions, releases and expiries
    happen, and the reviewer feedback is recorded (a simulated clock for ``keel demo``);
    how long ``wait`` waits is real time, on the system's clock."""

    def __init__(self, store: Store, audit: AuditLog | None = None, *,
                 poll_s: float = 0.5, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.audit = audit or AuditLog.from_settings(store)
        self.poll_s = poll_s
        self.clock = clock
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._integrity_reported: set[str] = set()
        self._poller = Poller("keel-review-sweeper", log,
                              "the review sweeper failed; will try again")

    # --- holding -----------------------------------------------------------------------------

    async def hold(self, *, trace_id: str, key_id: str | None, team: str | None,
                   feature: str | None, policy: str | None, policy_version: str | None,
                   reasons: list[JSON], mode: Literal["wait", "async"], timeout_s: float,
                   request: JSON | None, completion: JSON) -> Review:
        """Store ``completion`` as a pending review that expires in ``timeout_s``."""
        if mode not in MODES:
            raise ValueError(f"review mode must be one of {MODES}, not {mode!r}")
        if not timeout_s > 0:
            raise ValueError(f"review timeout_s must be positive, not {timeout_s!r}")
        now = self.clock()
        row: JSON = {
            "id": new_review_id(), "trace_id": trace_id, "key_id": key_id, "team": team,
            "feature": feature, "policy": policy, "policy_version": policy_version,
            "reasons": reasons, "mode": mode, "status": "pending",
            "request": dumps(request) if request is not None else None,
            "content": dumps(completion), "content_hash": canonical_hash(completion),
            "approved": None, "approved_hash": None, "decided_by": None,
            "decision_reason": None, "created_at": now, "expires_at": now + timeout_s,
            "decided_at": None, "released_at": None,
        }
        await q.insert_review(self.store, row)
        return Review.from_row(row)

    # --- reading -----------------------------------------------------------------------------

    async def get(self, review_id: str) -> Review | None:
        """The review; one pending past its deadline is expired first (fail closed)."""
        row = await q.get_review(self.store, review_id)
        if row is None:
            return None
        if row["status"] == "pending" and self.clock() >= row["expires_at"]:
            await self._expired(await q.expire(self.store, self.clock(), review_id))
            row = await q.get_review(self.store, review_id)  # expired here or elsewhere
            assert row is not None
        return Review.from_row(row)

    async def list_reviews(self, *, status: str | None = None, feature: str | None = None,
                           team: str | None = None, limit: int = 50,
                           cursor: str | None = None) -> tuple[list[Review], str | None]:
        """Newest first; returns (reviews, cursor of the next page or None). Reviews past
        their deadline are expired first, so ``pending`` lists only decidable ones."""
        if status is not None and status not in STATUSES:
            raise InvalidRequest(f"'status' must be one of {', '.join(STATUSES)}; got "
                                 f"{status!r}", param="status")
        await self.expire_due()
        rows, next_cursor = await q.list_reviews(
            self.store, q.ReviewFilter(status=status, feature=feature, team=team),
            limit=limit, cursor=cursor)
        return [Review.from_row(r) for r in rows], next_cursor

    async def _require(self, review_id: str) -> Review:
        review = await self.get(review_id)
        if review is None:
            raise NotFound(f"no review with id '{review_id}'; see GET /api/reviews or "
                           "`keel reviews list`", param="review_id")
        return review

    # --- deciding ----------------------------------------------------------------------------

    async def decide(self, review_id: str, *, decision: str, reviewer: str,
                     reason: str | None, content: str | None = None) -> Review:
        """Approve, edit (``content`` replaces the answer's text) or reject (``reason``
        required) a pending review. Raises NotFound, InvalidRequest, or 409 ReviewClosed
        when it is no longer pending (another reviewer was first, or it expired)."""
        decision, reason, text = check_decision(decision, reason, content)
        reviewer = (reviewer or "").strip()[:MAX_REVIEWER] or "unknown"
        review = await self._require(review_id)
        if review.status != "pending":
            raise closed_error(review)
        if review.content is None or canonical_hash(review.content) != review.content_hash:
            await self._integrity_failed(review, "content", review.content)
            raise ReviewIntegrity(f"review '{review.id}': the held answer does not match its "
                                  "hash; it cannot be decided or released")
        approved: JSON | None = None
        if decision == "approve":
            approved = review.content
        elif decision == "edit":
            assert text is not None
            approved = edited(review.content, text)
        now = self.clock()
        values: JSON = {
            "status": "rejected" if decision == "reject" else "approved",
            "approved": dumps(approved) if approved is not None else None,
            "approved_hash": canonical_hash(approved) if approved is not None else None,
            "decided_by": reviewer, "decision_reason": reason, "decided_at": now,
        }
        if not await q.decide(self.store, review_id, values, now):
            # lost a race with another reviewer, or the deadline passed meanwhile
            raise closed_error(await self._require(review_id))
        decided = await self._require(review_id)
        self._wake(review_id)
        await self.audit.try_record(
            ACTIONS[decision], actor=reviewer, target=review_id, before=decided.content_hash,
            after=decided.approved_hash, detail={
                "review_id": review_id, "trace_id": decided.trace_id,
                "policy": decided.policy, "policy_version": decided.policy_version,
                "feature": decided.feature, "team": decided.team,
                "content_hash": decided.content_hash,
                "approved_hash": decided.approved_hash, "reason": reason})
        await self._feedback(decided)
        return decided

    # --- waiting -----------------------------------------------------------------------------

    async def wait(self, review_id: str, timeout_s: float) -> Review:
        """The review once decided (a decision in this process wakes it at once; one made
        elsewhere is seen within ``poll_s``), or its state when ``timeout_s`` has passed
        (expired if past its deadline)."""
        end = time.time() + timeout_s
        event = asyncio.Event()
        self._waiters.setdefault(review_id, set()).add(event)
        try:
            while True:
                event.clear()  # before the read: a decision after it still wakes us
                review = await self._require(review_id)
                left = end - time.time()
                if review.status != "pending" or left <= 0:
                    return review
                try:
                    await asyncio.wait_for(event.wait(), min(self.poll_s, left))
                except TimeoutError:
                    pass
        finally:
            waiters = self._waiters.get(review_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[review_id]

    def _wake(self, review_id: str) -> None:
        for event in self._waiters.get(review_id, ()):
            event.set()

    # --- releasing ---------------------------------------------------------------------------

    async def release(self, review_id: str) -> JSON:
        """The approved chat.completion, if the review is approved and the stored answer
        still matches the hash its decision bound. Raises ReviewRejected (403) otherwise,
        ReviewIntegrity (500, audited) on a mismatch."""
        review = await self._require(review_id)
        if review.status != "approved":
            raise refused_error(review)
        if review.approved is None or canonical_hash(review.approved) != review.approved_hash:
            await self._integrity_failed(review, "approved", review.approved)
            raise ReviewIntegrity(
                f"review '{review.id}': the approved answer does not match the hash the "
                "decision bound, so it is not released; see the audit log "
                "(review.integrity_failed)", headers={REVIEW_HEADER: review.id})
        if review.released_at is None:
            await q.mark_released(self.store, review_id, self.clock())
        return review.approved

    async def _integrity_failed(self, review: Review, column: str, value: Any) -> None:
        key = f"{review.id}:{column}"
        log.error("review %s: the stored %s does not match its hash; not released",
                  review.id, column)
        if key in self._integrity_reported:  # once per process, not on every poll
            return
        self._integrity_reported.add(key)
        expected = review.content_hash if column == "content" else review.approved_hash
        await self.audit.try_record(
            "review.integrity_failed", actor=SYSTEM_ACTOR, target=review.id,
            before=expected, after=canonical_hash(value) if value is not None else None,
            detail={"review_id": review.id, "trace_id": review.trace_id, "column": column,
                    "policy": review.policy, "policy_version": review.policy_version,
                    "expected_hash": expected, "status": review.status})

    # --- expiring ----------------------------------------------------------------------------

    async def expire_due(self) -> int:
        """Expire every pending review past its deadline; returns how many this call
        expired (each is expired, and audited, by exactly one caller)."""
        return await self._expired(await q.expire(self.store, self.clock()))

    async def _expired(self, rows: list[JSON]) -> int:
        for row in rows:
            review = Review.from_row(row)
            self._wake(review.id)
            await self.audit.try_record(
                "review.expired", actor=SYSTEM_ACTOR, target=review.id,
                before=review.content_hash, detail={
                    "review_id": review.id, "trace_id": review.trace_id,
                    "policy": review.policy, "policy_version": review.policy_version,
                    "feature": review.feature, "team": review.team,
                    "content_hash": review.content_hash, "timeout_s": review.timeout_s})
        return len(rows)

    # --- feedback ----------------------------------------------------------------------------

    async def _feedback(self, review: Review) -> bool:
        """Record the decision as reviewer feedback on the trace; False when the trace is not
        stored yet (``retry_feedback`` records it once it is). Never raises: the decision
        stands whatever happens here."""
        try:
            trace = await get_trace(self.store, review.trace_id)
            if trace is None:
                return False
            body: JSON = {"id": FEEDBACK_PREFIX + review.id, "trace_id": review.trace_id,
                          "source": "reviewer", "comment": review.decision_reason}
            if review.decision == "approve":
                body.update(thumbs="up", outcome="accepted")
            elif review.decision == "edit":
                body.update(outcome="edited", corrected_text=answer_text(review.approved))
            else:
                body.update(thumbs="down", outcome="rejected")
            item = fb.parse_feedback(body)
            # rework is measured against what the model answered, whatever the trace holds
            await fb.record_feedback(self.store, _KEEL, item,
                                     {**trace, "response": review.content}, now=self.clock())
            return True
        except Exception:
            log.exception("could not record the reviewer feedback of review %s on trace %s",
                          review.id, review.trace_id)
            return False

    async def retry_feedback(self) -> int:
        """Record the feedback of decisions whose trace was not stored when they were made
        (a held request's trace is written after its answer); returns how many."""
        rows = await q.without_feedback(self.store, ("approved", "rejected"),
                                        self.clock() - FEEDBACK_WINDOW_S, FEEDBACK_PREFIX)
        done = 0
        for row in rows:
            done += await self._feedback(Review.from_row(row))
        return done

    # --- the sweeper -------------------------------------------------------------------------

    async def sweep(self) -> None:
        await self.expire_due()
        await self.retry_feedback()

    def start(self, interval_s: float) -> None:
        """Sweep every ``interval_s`` (expiries, late feedback) until ``aclose``."""
        self._poller.start(self.sweep, interval_s)

    async def aclose(self) -> None:
        await self._poller.stop()
