"""Feedback and outcomes for a trace answered a moment ago, before the writer has stored it:
accepted at once on the replica that answered (it waits for that trace's batch, and drains
nothing) and on any other replica sharing the database (it looks in the store until
KEEL_FEEDBACK_WAIT_S); a trace that never arrives is a 404 that says keel waited. Reads
(``GET /api/traces/{id}``, ``GET /api/feedback``) never wait and never drain the writer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.store.traces import get_trace
from keel.types import new_trace_id
from tests.feedback.test_feedback import ask, error, get, post
from tests.support.keel import Keel, running_keel

SLOW_S = 1.0  # a writer that fills a batch for this long before writing it
STALLED_S = 600.0  # a writer that stores nothing for the length of a test


@pytest.fixture
def replicas(tmp_path: Path, database_url: str) -> Iterator[tuple[Keel, Keel]]:
    """Two keels on one database: ``a`` stores its traces a second after answering."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with running_keel(tmp_path / "a", database_url=database_url,
                      trace_flush_interval_s=SLOW_S) as a, \
            running_keel(tmp_path / "b", database_url=database_url) as b:
        yield a, b


@pytest.fixture
def stalled(tmp_path: Path, database_url: str) -> Iterator[Keel]:
    with running_keel(tmp_path, database_url=database_url,
                      trace_flush_interval_s=STALLED_S, feedback_wait_s=0.5) as k:
        yield k


def test_feedback_and_outcomes_for_a_trace_another_replica_answered_a_moment_ago(
        replicas: tuple[Keel, Keel]) -> None:
    a, b = replicas
    key = a.create_key(team="cx", feature="support")
    b.run(b.state.keys.refresh())  # b would see the new key within its refresh interval
    trace_id, answer = ask(a, key)
    corrected = answer + "!"
    r = post(b, "/api/feedback", {"trace_id": trace_id, "outcome": "edited",
                                  "corrected_text": corrected}, key)
    assert r.status_code == 201, r.text
    assert r.json()["edit_distance"] == 1 and r.json()["team"] == "cx"
    second, _ = ask(a, key)
    r = post(b, "/api/outcomes", {"name": "ticket_resolved", "trace_ids": [second]}, key)
    assert r.status_code == 201, r.text
    assert r.json()["trace_ids"] == [second] and r.json()["team"] == "cx"


def test_feedback_on_the_replica_that_answered_is_accepted_at_once_every_time(
        replicas: tuple[Keel, Keel]) -> None:
    a, _ = replicas
    key = a.create_key(team="cx", feature="support")
    for _ in range(5):
        trace_id, answer = ask(a, key)
        r = post(a, "/api/feedback", {"trace_id": trace_id, "corrected_text": answer}, key)
        assert r.status_code == 201, r.text
        assert (r.json()["edit_distance"], r.json()["rework"]) == (0, 0.0)
        r = post(a, "/api/outcomes", {"name": "ticket_resolved", "trace_ids": [trace_id]},
                 key)
        assert r.status_code == 201, r.text


def test_a_trace_that_never_arrives_is_a_404_that_says_keel_waited(keel_b: Keel) -> None:
    missing = new_trace_id()
    r = post(keel_b, "/api/feedback", {"trace_id": missing, "thumbs": "up"})
    assert r.status_code == 404 and error(r)["param"] == "trace_id"
    message = error(r)["message"]
    assert missing in message and "waited" in message and "KEEL_FEEDBACK_WAIT_S" in message
    assert "same database" in message
    r = post(keel_b, "/api/outcomes", {"name": "ticket_resolved", "feature": "support",
                                       "trace_ids": [missing]})
    assert r.status_code == 404 and error(r)["param"] == "trace_ids"
    assert "waited" in error(r)["message"] and missing in error(r)["message"]


def test_a_refusal_that_does_not_depend_on_the_trace_comes_before_any_wait(
        keel_b: Keel) -> None:
    web = keel_b.create_key(team="cx", scope="feedback", origins=["https://app.example.com"])
    r = post(keel_b, "/api/feedback", {"trace_id": new_trace_id(), "thumbs": "up",
                                       "source": "reviewer"}, web)
    assert r.status_code == 403 and error(r)["code"] == "source_not_allowed"
    bound = keel_b.create_key(team="cx", feature="support")
    r = post(keel_b, "/api/outcomes", {"name": "t", "feature": "billing",
                                       "trace_ids": [new_trace_id()]}, bound)
    assert r.status_code == 403 and error(r)["code"] == "wrong_feature"


@pytest.fixture
def keel_b(tmp_path: Path, database_url: str) -> Iterator[Keel]:
    with running_keel(tmp_path, database_url=database_url) as k:
        yield k


# --- reads never drain the writer ------------------------------------------------------------


def test_reading_an_unknown_trace_is_a_404_at_once_and_drains_nothing(stalled: Keel) -> None:
    key = stalled.create_key(team="cx", feature="support")
    pending, _ = ask(stalled, key)
    missing = new_trace_id()
    r = get(stalled, f"/api/traces/{missing}")
    assert r.status_code == 404 and missing in error(r)["message"]
    assert get(stalled, "/api/feedback", trace_id=missing).status_code == 404
    writer = stalled.state.writer
    assert writer.written == 0 and writer.unstored_row(pending) is not None  # not drained
    assert stalled.run(get_trace(stalled.state.store, pending)) is None


def test_a_trace_answered_a_moment_ago_is_read_from_the_writer_as_it_will_be_stored(
        stalled: Keel) -> None:
    key = stalled.create_key(team="cx", feature="support")
    trace_id, answer = ask(stalled, key)
    r = get(stalled, f"/api/traces/{trace_id}")
    assert r.status_code == 200, r.text
    early = r.json()
    assert early["id"] == trace_id and early["team"] == "cx"
    assert early["response"]["choices"][0]["message"]["content"] == answer
    r = get(stalled, "/api/feedback", key, trace_id=trace_id)
    assert r.status_code == 200 and r.json()["data"] == []
    other = stalled.create_key(team="growth")
    assert get(stalled, "/api/feedback", other, trace_id=trace_id).status_code == 404
    assert stalled.state.writer.written == 0  # none of it drained the writer


def test_feedback_for_a_trace_that_cannot_be_stored_yet_is_a_503_to_retry(
        stalled: Keel) -> None:
    key = stalled.create_key(team="cx", feature="support")
    trace_id, _ = ask(stalled, key)
    r = post(stalled, "/api/feedback", {"trace_id": trace_id, "thumbs": "up"}, key)
    assert r.status_code == 503 and error(r)["code"] == "trace_not_stored_yet"
    assert trace_id in error(r)["message"] and r.headers["retry-after"]
    r = post(stalled, "/api/outcomes", {"name": "ticket_resolved", "trace_ids": [trace_id]},
             key)
    assert r.status_code == 503 and error(r)["code"] == "trace_not_stored_yet"
    # another team may not learn that the trace exists: the 404 a missing one gets
    other = stalled.create_key(team="growth", feature="support")
    r = post(stalled, "/api/feedback", {"trace_id": trace_id, "thumbs": "up"}, other)
    assert r.status_code == 404


def test_how_long_a_write_waits_is_keel_feedback_wait_s(stalled: Keel) -> None:
    missing = new_trace_id()
    r = post(stalled, "/api/feedback", {"trace_id": missing, "thumbs": "up"})
    assert r.status_code == 404 and "waited 0.5 s" in error(r)["message"]
