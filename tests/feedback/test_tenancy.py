"""Tenancy of feedback and outcomes: client ids are per team (another team's use of an id is
another record and shows nothing of the first), and another team's trace is as unknown as a
missing one on every route that takes a trace id. On SQLite and PostgreSQL, against a live
keel; the migration that scopes the ids is run over a populated database of each dialect."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from keel.server import app
from keel.store import Store
from keel.store import feedback as q
from keel.store.rollups import rebuild
from keel.store.schema import feedback, outcomes, rollup_outcomes, rollups
from keel.types import new_trace_id
from tests.feedback.test_feedback import APP, ask, error, get, post
from tests.server.test_roles import _flatten
from tests.support.keel import Keel, running_keel
from tests.support.migrations import empty_database_url, migrate  # noqa: F401 (a fixture)


@pytest.fixture
def keel(tmp_path: Path, database_url: str) -> Iterator[Keel]:
    # a trace that is not there is looked for this long before the 404
    with running_keel(tmp_path, database_url=database_url, feedback_wait_s=0.5) as k:
        yield k


def feedback_rollup(k: Keel, team: str) -> tuple[int, int, int]:
    """(feedback, thumbs up, thumbs down) of ``team`` in the day rollups."""
    async def read() -> tuple[int, int, int]:
        c = rollups.c
        async with k.state.store.connect() as conn:
            row = (await conn.execute(
                sa.select(sa.func.sum(c.feedback), sa.func.sum(c.thumbs_up),
                          sa.func.sum(c.thumbs_down))
                .where(c.granularity == "d", c.team == team))).one()
        return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)

    counts: tuple[int, int, int] = k.run(read())
    return counts


def outcome_events(k: Keel, feature: str, name: str) -> tuple[int, float]:
    async def read() -> tuple[int, float]:
        c = rollup_outcomes.c
        async with k.state.store.connect() as conn:
            row = (await conn.execute(
                sa.select(sa.func.sum(c.events), sa.func.sum(c.value))
                .where(c.granularity == "d", c.feature == feature, c.name == name))).one()
        return int(row[0] or 0), float(row[1] or 0)

    sums: tuple[int, float] = k.run(read())
    return sums


# --- ids per team ----------------------------------------------------------------------------


def test_two_teams_reusing_a_feedback_id_each_get_their_own_record(keel: Keel) -> None:
    cx = keel.create_key(team="cx", feature="support")
    growth = keel.create_key(team="growth", feature="support")
    cx_trace, _ = ask(keel, cx)
    growth_trace, _ = ask(keel, growth)
    keel.flush()
    mine = {"id": "widget-1", "trace_id": cx_trace, "thumbs": "up",
            "comment": "cx internal: the refund policy answer"}
    r = post(keel, "/api/feedback", mine, cx)
    assert r.status_code == 201, r.text

    theirs = {"id": "widget-1", "trace_id": growth_trace, "thumbs": "down",
              "comment": "too long"}
    r = post(keel, "/api/feedback", theirs, growth)
    assert r.status_code == 201, r.text  # a record of its own, not a conflict
    got = r.json()
    assert (got["id"], got["trace_id"], got["thumbs"], got["comment"], got["team"]) == (
        "widget-1", growth_trace, "down", "too long", "growth")
    assert "refund" not in r.text and cx_trace not in r.text

    # each team's retry meets its own record: the same content is a no-op ...
    assert post(keel, "/api/feedback", theirs, growth).status_code == 200
    assert post(keel, "/api/feedback", mine, cx).status_code == 200
    # ... and different content a 409 naming the fields that differ from the team's own
    r = post(keel, "/api/feedback", {**theirs, "comment": "changed"}, growth)
    assert r.status_code == 409 and error(r)["code"] == "idempotency_conflict"
    assert "differs in: comment" in error(r)["message"]
    assert "refund" not in r.text and "thumbs" not in error(r)["message"]

    listed = get(keel, "/api/feedback", cx, trace_id=cx_trace).json()["data"]
    assert [(f["id"], f["thumbs"], f["comment"]) for f in listed] == [
        ("widget-1", "up", mine["comment"])]
    listed = get(keel, "/api/feedback", growth, trace_id=growth_trace).json()["data"]
    assert [(f["id"], f["thumbs"]) for f in listed] == [("widget-1", "down")]
    assert feedback_rollup(keel, "cx") == (1, 1, 0)
    assert feedback_rollup(keel, "growth") == (1, 0, 1)


def test_two_teams_reusing_an_outcome_id_each_get_their_own_record(keel: Keel) -> None:
    cx = keel.create_key(team="cx", feature="support")
    growth = keel.create_key(team="growth", feature="support")
    at = time.time() - 60
    r = post(keel, "/api/outcomes", {"id": "crm-7", "name": "refund_avoided", "value": 1200.0,
                                     "at": at}, cx)
    assert r.status_code == 201, r.text
    r = post(keel, "/api/outcomes", {"id": "crm-7", "name": "refund_avoided", "value": 15.0,
                                     "at": at}, growth)
    assert r.status_code == 201, r.text
    assert (r.json()["value"], r.json()["team"]) == (15.0, "growth")
    assert "1200" not in r.text
    r = post(keel, "/api/outcomes", {"id": "crm-7", "name": "refund_avoided", "value": 16.0,
                                     "at": at}, growth)
    assert r.status_code == 409 and "differs in: value" in error(r)["message"]
    assert "1200" not in r.text
    assert [(o["id"], o["value"]) for o in get(keel, "/api/outcomes", cx).json()["data"]] == [
        ("crm-7", 1200.0)]
    assert [(o["id"], o["value"]) for o in get(keel, "/api/outcomes", growth).json()["data"]] \
        == [("crm-7", 15.0)]
    # the admin key records outcomes of no team under ids of its own, idempotently too
    body = {"id": "crm-7", "name": "refund_avoided", "value": 3.0, "feature": "support",
            "at": at}
    first = post(keel, "/api/outcomes", body)
    assert first.status_code == 201 and first.json()["team"] is None
    again = post(keel, "/api/outcomes", body)
    assert again.status_code == 200 and again.json() == first.json()
    assert outcome_events(keel, "support", "refund_avoided") == (3, 1218.0)

    # rebuilding the rollups counts each team's item once, even at the same time and id and
    # with a page boundary between them
    assert keel.run(rebuild(keel.state.store, at - 86_400, page=1))["outcomes"] == 3
    assert outcome_events(keel, "support", "refund_avoided") == (3, 1218.0)


# --- another team's trace --------------------------------------------------------------------


def probes(trace_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, url, request kwargs) of every route that takes a trace id."""
    out: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/api/feedback", {"json": {"trace_id": trace_id, "thumbs": "up"}}),
        ("GET", "/api/feedback", {"params": {"trace_id": trace_id}}),
        ("POST", "/api/outcomes", {"json": {"name": "ticket_resolved",
                                            "trace_ids": [trace_id]}}),
    ]
    for path, route in _flatten(app.routes()):
        if "{trace_id}" in path:
            for method in sorted(getattr(route, "methods", None) or ()):
                if method != "HEAD":
                    out.append((method, path.replace("{trace_id}", trace_id), {}))
    assert any("{trace_id}" not in u and u.startswith("/api/traces/") for _, u, _ in out)
    return out


def answer(k: Keel, key: str, method: str, url: str, kw: dict[str, Any],
           trace_id: str) -> tuple[int, str]:
    r = httpx.request(method, f"{k.url}{url}", headers={"authorization": f"Bearer {key}"},
                      **kw)
    return r.status_code, r.text.replace(trace_id, "<id>")


def test_another_teams_trace_answers_like_a_missing_one(keel: Keel) -> None:
    cx = keel.create_key(team="cx", feature="support")
    cx_trace, _ = ask(keel, cx)
    keel.flush()
    missing = new_trace_id()
    strangers = {"gateway key": keel.create_key(team="growth", feature="support"),
                 "feedback key": keel.create_key(team="growth", scope="feedback",
                                                 origins=[APP])}
    for who, key in strangers.items():
        for method, url, kw in probes(cx_trace):
            seen = answer(keel, key, method, url, kw, cx_trace)
            unknown = answer(keel, key, method, url.replace(cx_trace, missing),
                             _swap(kw, cx_trace, missing), missing)
            assert seen == unknown, (who, method, url, seen, unknown)
            assert seen[0] in (403, 404), (who, method, url, seen)
    # where the answer is about the trace (not the key), it is a 404
    key = strangers["gateway key"]
    r = post(keel, "/api/feedback", {"trace_id": cx_trace, "thumbs": "up"}, key)
    assert r.status_code == 404 and error(r)["param"] == "trace_id"
    assert "another team" not in r.text
    assert get(keel, "/api/feedback", key, trace_id=cx_trace).status_code == 404
    r = post(keel, "/api/outcomes", {"name": "ticket_resolved", "trace_ids": [cx_trace]}, key)
    assert r.status_code == 404 and error(r)["param"] == "trace_ids"
    # nothing was recorded on the trace meanwhile; its own team still writes and reads it
    assert get(keel, "/api/feedback", cx, trace_id=cx_trace).json()["data"] == []
    assert post(keel, "/api/feedback", {"trace_id": cx_trace, "thumbs": "up"}, cx) \
        .status_code == 201


def test_an_org_wide_role_key_reads_every_team_but_writes_for_its_own(keel: Keel) -> None:
    cx = keel.create_key(team="cx", feature="support")
    cx_trace, _ = ask(keel, cx)
    keel.flush()
    viewer = keel.create_key(team="growth", role="viewer", org_wide=True)
    assert get(keel, "/api/feedback", viewer, trace_id=cx_trace).status_code == 200
    # it may read the trace, so the refusal may say why
    r = post(keel, "/api/feedback", {"trace_id": cx_trace, "thumbs": "up"}, viewer)
    assert r.status_code == 403 and error(r)["code"] == "wrong_team"


def test_a_team_scoped_role_key_knows_another_teams_trace_as_a_missing_one(
        keel: Keel) -> None:
    cx = keel.create_key(team="cx", feature="support")
    cx_trace, _ = ask(keel, cx)
    keel.flush()
    viewer = keel.create_key(team="growth", role="viewer")
    missing = new_trace_id()
    for path, body in (("/api/feedback", {"thumbs": "up"}),
                       ("/api/outcomes", {"name": "sale", "feature": "support"})):
        key = "trace_id" if path == "/api/feedback" else "trace_ids"
        hidden, absent = (post(keel, path, {**body, key: t if key == "trace_id" else [t]},
                               viewer) for t in (cx_trace, missing))
        assert hidden.status_code == absent.status_code == 404, hidden.text
        assert error(hidden) == _swap(error(absent), missing, cx_trace)
    hidden, absent = (get(keel, "/api/feedback", viewer, trace_id=t) for t in (cx_trace, missing))
    assert hidden.status_code == absent.status_code == 404
    assert error(hidden) == _swap(error(absent), missing, cx_trace)
    assert feedback_rollup(keel, "cx") == (0, 0, 0)  # nothing was recorded


def _swap(kw: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    def swap(v: Any) -> Any:
        if isinstance(v, str):
            return v.replace(old, new)
        if isinstance(v, list):
            return [swap(x) for x in v]
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        return v

    return {k: swap(v) for k, v in kw.items()}


# --- the migration ---------------------------------------------------------------------------




async def test_the_migration_scopes_stored_ids_per_team(empty_database_url: str) -> None:  # noqa: F811
    store = Store(empty_database_url)
    try:
        await migrate(store, "0009")
        async with store.begin() as conn:
            await conn.execute(sa.text(
                "INSERT INTO feedback (id, trace_id, at, trace_time, source, critical_error, "
                "team, thumbs) VALUES ('fb-1', 't1', 1, 1, 'user', false, 'cx', 1), "
                "('fb-2', 't2', 2, 2, 'user', false, NULL, -1)"))
            await conn.execute(sa.text(
                "INSERT INTO outcomes (id, name, value, feature, team, at) VALUES "
                "('oc-1', 'sale', 5, 'shop', 'cx', 10), ('oc-2', 'sale', 7, 'shop', NULL, 11)"))
        await store.upgrade()
        assert (await store.current_revision() or "") >= "0010"  # 0010 and any later one

        async with store.connect() as conn:
            for table in (feedback, outcomes):
                pk = await conn.run_sync(
                    lambda c, t=table: sa.inspect(c).get_pk_constraint(t.name))
                assert pk["constrained_columns"] == [c.name for c in table.primary_key]
            indexes = await conn.run_sync(lambda c: sa.inspect(c).get_indexes("feedback"))
            assert {i["name"] for i in indexes} == {"ix_feedback_trace", "ix_feedback_time"}
        rows = await q.list_feedback(store, "t1") + await q.list_feedback(store, "t2")
        assert [(r["id"], r["team"], r["thumbs"]) for r in rows] == [
            ("fb-1", "cx", 1), ("fb-2", None, -1)]
        listed = await q.list_outcomes(store, q.OutcomeFilter(feature="shop"))
        assert [(o["id"], o["team"], o["value"]) for o in listed] == [
            ("oc-2", None, 7.0), ("oc-1", "cx", 5.0)]

        # the stored ids keep working as the idempotency keys of their teams ...
        new_row = {"id": "oc-1", "name": "sale", "value": 5.0, "feature": "shop",
                   "team": "cx", "trace_ids": None, "at": 10.0, "key_id": None}
        stored, created = await q.insert_outcome(store, new_row)
        assert not created and stored["value"] == 5.0
        stored, created = await q.insert_outcome(store, {**new_row, "team": None, "id": "oc-2"})
        assert not created and stored["value"] == 7.0
        # ... and another team's use of one is a new record
        stored, created = await q.insert_outcome(store, {**new_row, "team": "growth",
                                                         "value": 9.0})
        assert created and stored["team"] == "growth"
        listed = await q.list_outcomes(store, q.OutcomeFilter(team="cx"))
        assert [(o["id"], o["value"]) for o in listed] == [("oc-1", 5.0)]
    finally:
        await store.aclose()
