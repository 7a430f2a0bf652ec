"""The review service on both dialects: hold -> decide -> release, edits bound by their
hash, rejections and timeouts refused (fail closed, expired exactly once), races between
reviewers and replicas, tampering caught, waiting on another replica's decision, the
audit log and the reviewer feedback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from keel.audit import AuditLog
from keel.errors import InvalidRequest, NotFound
from keel.review import (
    Review,
    ReviewClosed,
    ReviewIntegrity,
    ReviewRejected,
    ReviewService,
    canonical_hash,
)
from keel.store import Store
from keel.store.feedback import list_feedback
from keel.store.schema import reviews as reviews_table
from keel.store.traces import insert_rows, payload_values, trace_values
from keel.types import Trace, Usage, new_trace_id

ANSWER = "Your refund of $120 was approved; it reaches your card in 3-5 days."
EDITED = "Your refund request was received; an agent will confirm it within a day."
USER = [{"role": "user", "content": "Where is my refund?"}]


def completion(text: str = ANSWER) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "mock",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 12, "total_tokens": 17}}


@pytest.fixture
def audit(store: Store) -> AuditLog:
    return AuditLog(store)


@pytest.fixture
def svc(store: Store, audit: AuditLog) -> ReviewService:
    return ReviewService(store, audit, poll_s=0.05)


@pytest.fixture
async def replica(database_url: str) -> AsyncIterator[ReviewService]:
    """A second process on the same database: its own engine, pool and in-memory state."""
    other = Store(database_url)
    yield ReviewService(other, AuditLog(other), poll_s=0.05)
    await other.aclose()


async def hold(svc: ReviewService, *, timeout_s: float = 60.0, trace_id: str | None = None,
               mode: Any = "wait") -> Review:
    return await svc.hold(
        trace_id=trace_id or new_trace_id(), key_id="k1", team="cx", feature="refunds",
        policy="refunds-policy", policy_version="abc123", mode=mode,
        reasons=[{"scanner": "money", "action": "review", "detail": "amount over $100"}],
        timeout_s=timeout_s, request={"model": "mock", "messages": USER},
        completion=completion())


async def store_trace(store: Store, trace_id: str) -> None:
    t = Trace(id=trace_id, start_time=time.time(), endpoint="chat", team="cx",
              feature="refunds", model_requested="mock", model_served="mock",
              provider="mock", status=200, usage=Usage(input_tokens=5, output_tokens=12),
              request_body={"model": "mock", "messages": USER},
              response_body=completion())
    payload = payload_values(t)
    await insert_rows(store, [trace_values(t)], [payload] if payload else [])


async def actions(audit: AuditLog, prefix: str = "review.") -> list[dict[str, Any]]:
    entries, _ = await audit.entries(action=prefix, limit=100)
    return list(reversed(entries))


async def test_hold_approve_release_returns_the_held_answer(
        svc: ReviewService, audit: AuditLog) -> None:
    r = await hold(svc)
    assert r.status == "pending" and r.mode == "wait"
    assert r.content == completion() and r.content_hash == canonical_hash(completion())
    assert r.expires_at == pytest.approx(r.created_at + 60.0)
    assert (await svc.get(r.id)) == r

    with pytest.raises(ReviewRejected) as refused:  # not released before a decision
        await svc.release(r.id)
    assert refused.value.status == 403 and "pending" in refused.value.message

    decided = await svc.decide(r.id, decision="approve", reviewer="alice", reason="checked")
    assert decided.status == "approved" and decided.decision == "approve"
    assert decided.decided_by == "alice" and decided.approved == completion()
    assert decided.approved_hash == decided.content_hash

    assert await svc.release(r.id) == completion()
    first = await svc.get(r.id)
    assert first is not None and first.released_at is not None
    assert await svc.release(r.id) == completion()  # again: same answer, first release kept
    again = await svc.get(r.id)
    assert again is not None and again.released_at == first.released_at

    [entry] = await actions(audit)
    assert entry["action"] == "review.approved" and entry["actor"] == "alice"
    assert entry["target"] == r.id
    d = entry["detail"]
    assert d["review_id"] == r.id and d["trace_id"] == r.trace_id
    assert d["policy"] == "refunds-policy" and d["policy_version"] == "abc123"
    assert d["content_hash"] == d["approved_hash"] == r.content_hash
    assert d["reason"] == "checked"


async def test_an_edit_changes_the_released_text_and_its_hash(
        svc: ReviewService, audit: AuditLog) -> None:
    r = await hold(svc)
    decided = await svc.decide(r.id, decision="edit", reviewer="bob", reason="too strong",
                               content=EDITED)
    assert decided.status == "approved" and decided.decision == "edit"
    assert decided.approved_hash != decided.content_hash
    released = await svc.release(r.id)
    assert released["choices"][0]["message"]["content"] == EDITED
    assert released["id"] == "chatcmpl-1" and released["usage"] == completion()["usage"]
    assert canonical_hash(released) == decided.approved_hash
    assert (await svc.get(r.id)).content == completion()  # type: ignore[union-attr]

    [entry] = await actions(audit)
    assert entry["action"] == "review.edited" and entry["actor"] == "bob"
    assert entry["detail"]["approved_hash"] == decided.approved_hash
    assert entry["before_hash"] == r.content_hash and entry["after_hash"] == decided.approved_hash


async def test_a_rejection_refuses_the_release_with_the_reviewers_reason(
        svc: ReviewService, audit: AuditLog) -> None:
    r = await hold(svc)
    decided = await svc.decide(r.id, decision="reject", reviewer="carol",
                               reason="promises a refund we cannot give")
    assert decided.status == "rejected" and decided.approved is None
    with pytest.raises(ReviewRejected) as refused:
        await svc.release(r.id)
    err = refused.value
    assert err.status == 403 and err.code == "review_rejected"
    assert "carol" in err.message and "promises a refund we cannot give" in err.message
    assert err.headers["x-keel-review-id"] == r.id
    assert [e["action"] for e in await actions(audit)] == ["review.rejected"]


async def test_bad_decisions_are_refused_with_what_to_send(svc: ReviewService) -> None:
    r = await hold(svc)
    with pytest.raises(InvalidRequest) as bad:
        await svc.decide(r.id, decision="maybe", reviewer="a", reason=None)
    assert bad.value.param == "decision"
    assert "approve, edit, reject" in bad.value.message and "'maybe'" in bad.value.message
    for content in (None, "", "   "):
        with pytest.raises(InvalidRequest) as bad:
            await svc.decide(r.id, decision="edit", reviewer="a", reason=None, content=content)
        assert bad.value.param == "content"
    with pytest.raises(InvalidRequest) as bad:
        await svc.decide(r.id, decision="reject", reviewer="a", reason="  ")
    assert bad.value.param == "reason"
    with pytest.raises(InvalidRequest) as bad:
        await svc.decide(r.id, decision="approve", reviewer="a", reason=None, content="x")
    assert bad.value.param == "content"
    with pytest.raises(NotFound):
        await svc.decide("rv_nope", decision="approve", reviewer="a", reason=None)
    with pytest.raises(NotFound):
        await svc.release("rv_nope")
    assert await svc.get("rv_nope") is None
    assert (await svc.get(r.id)).status == "pending"  # type: ignore[union-attr]


async def test_deciding_a_closed_review_is_a_409_naming_its_status(
        svc: ReviewService) -> None:
    r = await hold(svc)
    await svc.decide(r.id, decision="approve", reviewer="alice", reason=None)
    with pytest.raises(ReviewClosed) as closed:
        await svc.decide(r.id, decision="reject", reviewer="bob", reason="no")
    assert closed.value.status == 409 and closed.value.code == "review_closed"
    assert "approved by alice" in closed.value.message
    assert (await svc.release(r.id)) == completion()  # the first decision stands


async def test_two_concurrent_decisions_on_two_replicas_one_wins(
        svc: ReviewService, replica: ReviewService, audit: AuditLog) -> None:
    for _ in range(3):
        r = await hold(svc)
        results = await asyncio.gather(
            svc.decide(r.id, decision="approve", reviewer="alice", reason=None),
            replica.decide(r.id, decision="reject", reviewer="bob", reason="no"),
            svc.decide(r.id, decision="edit", reviewer="carol", reason=None, content=EDITED),
            return_exceptions=True)
        won = [x for x in results if isinstance(x, Review)]
        lost = [x for x in results if not isinstance(x, Review)]
        assert len(won) == 1 and len(lost) == 2, results
        assert all(isinstance(x, ReviewClosed) and x.status == 409 for x in lost), lost
        stored = await svc.get(r.id)
        assert stored is not None and stored.decided_by == won[0].decided_by
        assert stored.status == won[0].status
    assert len(await actions(audit)) == 3  # one decision audited per review


async def test_a_timeout_expires_the_review_once_and_fails_closed(
        svc: ReviewService, replica: ReviewService, audit: AuditLog) -> None:
    r = await hold(svc, timeout_s=0.2)
    others = [await hold(svc, timeout_s=0.2) for _ in range(3)]
    await asyncio.sleep(0.3)
    counts = await asyncio.gather(svc.expire_due(), replica.expire_due(), svc.expire_due(),
                                  replica.expire_due())
    assert sum(counts) == 4  # each review expired by exactly one of the sweepers
    assert await svc.expire_due() == 0

    got = await svc.get(r.id)
    assert got is not None and got.status == "expired" and got.decided_at is not None
    with pytest.raises(ReviewRejected) as refused:
        await svc.release(r.id)
    assert "no decision within 0.2 s" in refused.value.message
    with pytest.raises(ReviewClosed) as closed:
        await svc.decide(r.id, decision="approve", reviewer="late", reason=None)
    assert "expired" in closed.value.message

    entries = await actions(audit)
    assert sorted(e["target"] for e in entries) == sorted([r.id, *(o.id for o in others)])
    assert {(e["action"], e["actor"]) for e in entries} == {("review.expired", "keel")}


async def test_a_read_past_the_deadline_expires_it_once_across_replicas(
        svc: ReviewService, replica: ReviewService, audit: AuditLog) -> None:
    r = await hold(svc, timeout_s=0.1)
    await asyncio.sleep(0.2)
    got = await asyncio.gather(svc.get(r.id), replica.get(r.id), svc.get(r.id))
    assert {x.status for x in got if x is not None} == {"expired"}
    assert [e["action"] for e in await actions(audit)] == ["review.expired"]


async def test_tampering_with_the_approved_answer_refuses_the_release_and_is_audited(
        svc: ReviewService, store: Store, audit: AuditLog) -> None:
    r = await hold(svc)
    await svc.decide(r.id, decision="approve", reviewer="alice", reason=None)
    forged = completion("Your refund of $12,000 was approved.")
    async with store.begin() as conn:
        await conn.execute(reviews_table.update().where(reviews_table.c.id == r.id)
                           .values(approved=orjson.dumps(forged).decode()))
    for _ in range(2):
        with pytest.raises(ReviewIntegrity) as broken:
            await svc.release(r.id)
        assert broken.value.status == 500 and broken.value.code == "review_integrity"
    got = await svc.get(r.id)
    assert got is not None and got.released_at is None

    entries = [e for e in await actions(audit) if e["action"] == "review.integrity_failed"]
    assert len(entries) == 1  # not once per poll
    assert entries[0]["actor"] == "keel" and entries[0]["target"] == r.id
    assert entries[0]["before_hash"] == got.approved_hash
    assert entries[0]["after_hash"] == canonical_hash(forged)


async def test_wait_wakes_on_a_decision_made_by_another_replica(
        svc: ReviewService, replica: ReviewService) -> None:
    r = await hold(svc)

    async def decide_later() -> None:
        await asyncio.sleep(0.2)
        await replica.decide(r.id, decision="approve", reviewer="alice", reason=None)

    started = time.monotonic()
    waited, _ = await asyncio.gather(svc.wait(r.id, 10.0), decide_later())
    assert waited.status == "approved" and waited.decided_by == "alice"
    assert time.monotonic() - started < 5.0
    assert await svc.release(r.id) == completion()


async def test_wait_wakes_at_once_on_a_decision_in_this_process(
        store: Store, audit: AuditLog) -> None:
    svc = ReviewService(store, audit, poll_s=30.0)  # polling alone would take 30 s
    r = await hold(svc)
    waiter = asyncio.create_task(svc.wait(r.id, 20.0))
    await asyncio.sleep(0.1)
    await svc.decide(r.id, decision="reject", reviewer="bob", reason="off-policy")
    got = await asyncio.wait_for(waiter, 5.0)
    assert got.status == "rejected" and svc._waiters == {}


async def test_wait_returns_the_expired_review_when_the_timeout_passes(
        svc: ReviewService) -> None:
    r = await hold(svc, timeout_s=0.3)
    got = await svc.wait(r.id, 0.3)
    assert got.status == "expired"
    short = await hold(svc, timeout_s=60.0)
    still = await svc.wait(short.id, 0.1)
    assert still.status == "pending"


async def test_the_audit_log_verifies_after_decisions(
        svc: ReviewService, audit: AuditLog) -> None:
    for decision, content, reason in (("approve", None, None), ("edit", EDITED, "tone"),
                                      ("reject", None, "wrong")):
        r = await hold(svc)
        await svc.decide(r.id, decision=decision, reviewer="alice", reason=reason,
                         content=content)
    await hold(svc, timeout_s=0.05)
    await asyncio.sleep(0.1)
    assert await svc.expire_due() == 1
    await audit.checkpoint()
    report = await audit.verify()
    assert report.ok, report.problem
    assert [e["action"] for e in await actions(audit)] == [
        "review.approved", "review.edited", "review.rejected", "review.expired"]


async def test_decisions_are_reviewer_feedback_on_the_trace(
        svc: ReviewService, store: Store) -> None:
    stored: dict[str, str] = {}
    for decision in ("approve", "edit", "reject"):
        trace_id = new_trace_id()
        await store_trace(store, trace_id)
        r = await hold(svc, trace_id=trace_id)
        await svc.decide(r.id, decision=decision, reviewer="alice",
                         reason="no" if decision == "reject" else None,
                         content=EDITED if decision == "edit" else None)
        stored[decision] = trace_id
    [up] = await list_feedback(store, stored["approve"])
    assert up["source"] == "reviewer" and up["thumbs"] == 1 and up["outcome"] == "accepted"
    assert up["id"].startswith("review-rv_") and up["feature"] == "refunds"
    [edit] = await list_feedback(store, stored["edit"])
    assert edit["source"] == "reviewer" and edit["corrected_text"] == EDITED
    assert edit["outcome"] == "edited" and edit["rework"] is not None and edit["rework"] > 0.3
    [down] = await list_feedback(store, stored["reject"])
    assert down["thumbs"] == -1 and down["comment"] == "no" and down["outcome"] == "rejected"


async def test_feedback_waits_for_a_trace_written_after_the_decision(
        svc: ReviewService, store: Store, audit: AuditLog) -> None:
    trace_id = new_trace_id()
    r = await hold(svc, trace_id=trace_id)  # mode wait: the trace is written after release
    decided = await svc.decide(r.id, decision="edit", reviewer="alice", reason=None,
                               content=EDITED)
    assert decided.status == "approved"  # the missing trace does not undo the decision
    assert await list_feedback(store, trace_id) == []
    assert await svc.retry_feedback() == 0  # still no trace
    await store_trace(store, trace_id)
    await svc.sweep()
    [row] = await list_feedback(store, trace_id)
    assert row["corrected_text"] == EDITED
    assert await svc.retry_feedback() == 0  # recorded once
    async with store.connect() as conn:
        n = (await conn.execute(sa.select(sa.func.count()).select_from(reviews_table))).scalar()
    assert n == 1


async def test_hold_refuses_a_bad_mode_or_timeout(svc: ReviewService) -> None:
    with pytest.raises(ValueError, match="mode"):
        await hold(svc, mode="later")
    with pytest.raises(ValueError, match="timeout_s"):
        await hold(svc, timeout_s=0)


async def test_list_filters_and_pages(svc: ReviewService) -> None:
    held = [await hold(svc) for _ in range(5)]
    await svc.decide(held[0].id, decision="approve", reviewer="a", reason=None)
    other = await svc.hold(trace_id=new_trace_id(), key_id=None, team="cx", feature="search",
                           policy=None, policy_version=None, reasons=[], mode="async",
                           timeout_s=60, request=None, completion=completion())
    page, cursor = await svc.list_reviews(limit=4)
    assert [x.id for x in page] == [other.id, *(h.id for h in reversed(held[2:]))]
    assert cursor is not None
    rest, end = await svc.list_reviews(limit=4, cursor=cursor)
    assert [x.id for x in rest] == [held[1].id, held[0].id] and end is None
    pending, _ = await svc.list_reviews(status="pending", feature="refunds")
    assert [x.id for x in pending] == [h.id for h in reversed(held[1:])]
    approved, _ = await svc.list_reviews(status="approved")
    assert [x.id for x in approved] == [held[0].id]
    with pytest.raises(InvalidRequest):
        await svc.list_reviews(status="done")
