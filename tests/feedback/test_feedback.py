"""Feedback and business outcomes on a live keel: every field, rework, idempotency, rollups
(in the transaction that stores them), permissions, feedback-only keys, CORS, the client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from keel.cli.main import main
from keel.client import KeelClientError, KeelFeedback
from keel.errors import PermissionDenied
from keel.keys.service import KeyRing, create_key
from keel.store import Store
from keel.store.rollups import bucket
from keel.store.schema import rollup_outcomes, rollups
from keel.store.traces import insert_rows, payload_values, trace_values
from keel.types import Trace, Usage, new_trace_id
from tests.support.keel import Keel, running_keel

APP = "https://app.example.com"
EVIL = "https://evil.example.net"
USER = [{"role": "user", "content": "How do I reset my password on the billing portal?"}]


@pytest.fixture
def keel(tmp_path: Path, database_url: str) -> Iterator[Keel]:
    # a trace that is not there is looked for this long before the 404
    with running_keel(tmp_path, database_url=database_url, feedback_wait_s=0.5) as k:
        yield k


def ask(k: Keel, key: str, content: str = "") -> tuple[str, str]:
    """One chat answer through the gateway: (trace id, the answer's text)."""
    c = openai.OpenAI(base_url=k.base_url, api_key=key, max_retries=0)
    messages = [{"role": "user", "content": content}] if content else USER
    raw = c.chat.completions.with_raw_response.create(model="mock", messages=messages)
    answer = raw.parse().choices[0].message.content
    assert answer
    return raw.headers["x-keel-trace-id"], answer


def post(k: Keel, path: str, body: Any, key: str | None = None,
         headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{k.url}{path}", json=body, headers={
        "authorization": f"Bearer {key or k.admin_key}", **(headers or {})})


def get(k: Keel, path: str, key: str | None = None, **params: Any) -> httpx.Response:
    return httpx.get(f"{k.url}{path}", params=params,
                     headers={"authorization": f"Bearer {key or k.admin_key}"})


def error(r: httpx.Response) -> dict[str, Any]:
    return dict(r.json()["error"])


def rollup_row(k: Keel, t: float, *, granularity: str = "h", feature: str = "support",
               team: str = "cx", model: str = "mock", prompt: str = "") -> dict[str, Any]:
    async def q() -> dict[str, Any]:
        async with k.state.store.connect() as conn:
            row = (await conn.execute(sa.select(rollups).where(
                rollups.c.granularity == granularity, rollups.c.bucket == bucket(t, granularity),
                rollups.c.feature == feature, rollups.c.team == team, rollups.c.model == model,
                rollups.c.prompt == prompt))).first()
        return dict(row._mapping) if row else {}

    return dict(k.run(q()))


def outcome_rollups(k: Keel, feature: str, name: str) -> dict[str, tuple[float, int, float]]:
    async def q() -> dict[str, tuple[float, int, float]]:
        async with k.state.store.connect() as conn:
            rows = (await conn.execute(sa.select(rollup_outcomes).where(
                rollup_outcomes.c.feature == feature, rollup_outcomes.c.name == name))).all()
        return {r.granularity: (r.bucket, r.events, r.value) for r in rows}

    return dict(k.run(q()))


def old_trace(k: Keel, *, start: float, answer: str, team: str = "cx",
              prompt: tuple[str, int] | None = None) -> str:
    """A trace answered at ``start`` (stored directly, as if from long ago)."""
    t = Trace(id=new_trace_id(), start_time=start, endpoint="chat", key_id=None, team=team,
              feature="support", model_requested="mock", model_served="mock",
              provider="mock", status=200, end_time=start + 0.2, latency_ms=200.0,
              usage=Usage(input_tokens=10, output_tokens=5),
              request_body={"model": "mock", "messages": USER},
              response_body={"choices": [{"index": 0, "message": {"role": "assistant",
                                                                  "content": answer}}]})
    if prompt:
        t.prompt_name, t.prompt_version = prompt
    payload = payload_values(t)
    k.run(insert_rows(k.state.store, [trace_values(t)], [payload] if payload else []))
    return t.id


# --- feedback --------------------------------------------------------------------------------


def test_every_feedback_field_is_stored_and_read_back(keel: Keel) -> None:
    key = keel.create_key(team="cx", feature="support")
    trace_id, answer = ask(keel, key)
    keel.flush()
    r = post(keel, "/api/feedback", {
        "trace_id": trace_id, "thumbs": "down", "outcome": "escalated", "edit_distance": 7,
        "score": {"name": "helpfulness", "value": 0.25}, "critical_error": True,
        "critical_category": "wrong_refund_policy", "comment": "told the user the wrong thing",
        "source": "reviewer"}, key)
    assert r.status_code == 201, r.text
    item = r.json()
    assert item["object"] == "feedback" and item["id"].startswith("fb_")
    assert {k: item[k] for k in ("trace_id", "thumbs", "outcome", "edit_distance", "score",
                                 "critical_error", "critical_category", "comment", "source",
                                 "feature", "team", "model", "prompt")} == {
        "trace_id": trace_id, "thumbs": "down", "outcome": "escalated", "edit_distance": 7,
        "score": {"name": "helpfulness", "value": 0.25}, "critical_error": True,
        "critical_category": "wrong_refund_policy", "comment": "told the user the wrong thing",
        "source": "reviewer", "feature": "support", "team": "cx", "model": "mock",
        "prompt": None}
    assert item["rework"] == pytest.approx(min(7 / len(answer), 1.0))
    assert item["key_id"] == keel.state.keys.authenticate(key).key_id
    # thumbs as numbers; source defaults to user
    r2 = post(keel, "/api/feedback", {"trace_id": trace_id, "thumbs": 1})
    assert r2.status_code == 201 and r2.json()["thumbs"] == "up"
    assert r2.json()["source"] == "user" and r2.json()["key_id"] is None
    r3 = post(keel, "/api/feedback", {"trace_id": trace_id, "thumbs": -1, "outcome": "rejected"})
    assert r3.json()["thumbs"] == "down"
    listed = get(keel, "/api/feedback", key, trace_id=trace_id)
    assert listed.status_code == 200
    assert [f["id"] for f in listed.json()["data"]] == [item["id"], r2.json()["id"],
                                                       r3.json()["id"]]
    assert listed.json()["data"][0] == item


def test_rework_is_measured_from_the_corrected_text(keel: Keel) -> None:
    key = keel.create_key(team="cx", feature="support")
    trace_id, answer = ask(keel, key)
    # answered a moment ago: found even while the trace may still be queued for writing
    inserted = answer[:5] + "XYZ" + answer[5:]  # three insertions
    r = post(keel, "/api/feedback", {"trace_id": trace_id, "outcome": "edited",
                                     "corrected_text": inserted}, key)
    assert r.status_code == 201, r.text
    assert r.json()["edit_distance"] == 3
    assert r.json()["rework"] == pytest.approx(3 / (len(answer) + 3))
    assert r.json()["corrected_text"] == inserted
    swapped = "Z" + answer[1:]  # one substitution
    r = post(keel, "/api/feedback", {"trace_id": trace_id, "corrected_text": swapped})
    assert (r.json()["edit_distance"], r.json()["rework"]) == (1, pytest.approx(1 / len(answer)))
    r = post(keel, "/api/feedback", {"trace_id": trace_id, "corrected_text": answer})
    assert (r.json()["edit_distance"], r.json()["rework"]) == (0, 0.0)
    r = post(keel, "/api/feedback", {"trace_id": trace_id, "corrected_text": ""})
    assert (r.json()["edit_distance"], r.json()["rework"]) == (len(answer), 1.0)
    r = post(keel, "/api/feedback", {"trace_id": trace_id,
                                     "edit_distance": 10 * len(answer)})
    assert r.json()["rework"] == 1.0  # capped


def test_feedback_rolls_up_at_the_trace_time_with_its_attribution(keel: Keel) -> None:
    start = time.time() - 3 * 86400 - 1234.5  # answered three days ago
    answer = "Open Settings, then Security, then Reset password."
    trace_id = old_trace(keel, start=start, answer=answer, prompt=("support-answer", 3))
    before = {g: rollup_row(keel, start, granularity=g, prompt="support-answer@3")
              for g in ("m", "h", "d")}
    assert before["h"]["requests"] == 1 and before["h"]["feedback"] == 0
    bodies = [
        {"trace_id": trace_id, "thumbs": "up", "outcome": "accepted"},
        {"trace_id": trace_id, "thumbs": "down", "outcome": "edited",
         "corrected_text": answer + " Done."},
        {"trace_id": trace_id, "outcome": "rejected", "critical_error": True},
        {"trace_id": trace_id, "outcome": "escalated", "comment": "needs a human"},
    ]
    for body in bodies:
        r = post(keel, "/api/feedback", body)
        assert r.status_code == 201, r.text
        assert r.json()["trace_time"] == pytest.approx(start)
        assert r.json()["prompt"] == "support-answer@3"
    for g in ("m", "h", "d"):
        row = rollup_row(keel, start, granularity=g, prompt="support-answer@3")
        assert row["requests"] == 1  # the trace itself, counted once
        assert (row["feedback"], row["thumbs_up"], row["thumbs_down"], row["accepted"],
                row["edited"], row["rejected"], row["escalated"], row["critical_errors"],
                row["rework_n"]) == (4, 1, 1, 1, 1, 1, 1, 1, 1)
        assert row["rework_sum"] == pytest.approx(6 / (len(answer) + 6))
    # nothing was counted at the time the feedback arrived
    assert rollup_row(keel, time.time(), prompt="support-answer@3") == {}


def test_same_id_is_idempotent_and_different_content_conflicts(keel: Keel) -> None:
    start = time.time() - 7200
    trace_id = old_trace(keel, start=start, answer="Use the reset link in the email.")
    body = {"id": "widget-42:thumb", "trace_id": trace_id, "thumbs": "up",
            "corrected_text": "Use the reset link we emailed you."}
    first = post(keel, "/api/feedback", body)
    assert first.status_code == 201
    again = post(keel, "/api/feedback", body)
    assert again.status_code == 200 and again.json() == first.json()
    same_thumbs_as_number = post(keel, "/api/feedback", {**body, "thumbs": 1})
    assert same_thumbs_as_number.status_code == 200
    conflict = post(keel, "/api/feedback", {**body, "thumbs": "down", "comment": "changed"})
    assert conflict.status_code == 409
    err = error(conflict)
    assert err["code"] == "idempotency_conflict" and err["param"] == "id"
    assert "widget-42:thumb" in err["message"] and "thumbs, comment" in err["message"]
    row = rollup_row(keel, start)
    assert (row["feedback"], row["thumbs_up"], row["thumbs_down"], row["rework_n"]) == \
        (1, 1, 0, 1)
    assert [f["thumbs"] for f in get(keel, "/api/feedback", trace_id=trace_id).json()["data"]] \
        == ["up"]


def test_unknown_trace_is_404_not_a_silent_insert(keel: Keel) -> None:
    r = post(keel, "/api/feedback", {"trace_id": "0" * 32, "thumbs": "up"})
    assert r.status_code == 404
    assert error(r)["param"] == "trace_id" and "0" * 32 in error(r)["message"]
    assert get(keel, "/api/feedback", trace_id="0" * 32).status_code == 404


BAD_FEEDBACK: list[tuple[dict[str, Any], str, str]] = [
    ({"thumbs": "up", "stars": 5}, "stars", "unknown field"),
    ({"thumbs": "sideways"}, "thumbs", '"up", "down", 1 or -1'),
    ({"thumbs": True}, "thumbs", '"up", "down", 1 or -1'),
    ({"thumbs": 2}, "thumbs", '"up", "down", 1 or -1'),
    ({"outcome": "maybe"}, "outcome", "accepted, edited, rejected, escalated"),
    ({"edit_distance": -1}, "edit_distance", "integer >= 0"),
    ({"edit_distance": "3"}, "edit_distance", "integer >= 0"),
    ({"edit_distance": 3, "corrected_text": "x"}, "edit_distance", "not both"),
    ({"corrected_text": 12}, "corrected_text", "must be a string"),
    ({"score": 0.5}, "score", '{"name": string, "value": number}'),
    ({"score": {"name": "helpfulness"}}, "score", '{"name": string, "value": number}'),
    ({"score": {"name": "helpfulness", "value": "high"}}, "score.value", "finite number"),
    ({"critical_error": "yes"}, "critical_error", "true or false"),
    ({"critical_error": False, "critical_category": "pii"}, "critical_category",
     '"critical_error": true'),
    ({"comment": "x" * 10_001}, "comment", "over the limit of 10000"),
    ({"source": "boss", "thumbs": "up"}, "source", "user, reviewer, eval, judge, system"),
    ({}, "thumbs", "nothing to record"),
    ({"id": "x" * 65, "thumbs": "up"}, "id", "over the limit of 64"),
    ({"id": "", "thumbs": "up"}, "id", "1-64 printable"),
]


def test_bad_feedback_is_400_naming_the_field(keel: Keel) -> None:
    start = time.time() - 60
    trace_id = old_trace(keel, start=start, answer="An answer.")
    for extra, param, hint in BAD_FEEDBACK:
        r = post(keel, "/api/feedback", {"trace_id": trace_id, **extra})
        assert r.status_code == 400, (extra, r.text)
        err = error(r)
        assert err["type"] == "invalid_request_error"
        assert err["param"] == param, (extra, err)
        assert hint in err["message"], (extra, err)
    r = post(keel, "/api/feedback", {"thumbs": "up"})
    assert r.status_code == 400 and error(r)["param"] == "trace_id"
    assert "x-keel-trace-id" in error(r)["message"]
    r = httpx.post(f"{keel.url}/api/feedback", content=b"{not json",
                   headers=keel.admin_headers())
    assert r.status_code == 400 and "not valid JSON" in error(r)["message"]
    r = get(keel, "/api/feedback")
    assert r.status_code == 400 and error(r)["param"] == "trace_id"
    assert rollup_row(keel, start)["feedback"] == 0


def test_a_key_may_only_write_for_its_own_team(keel: Keel) -> None:
    cx = keel.create_key(team="cx", feature="support")
    other = keel.create_key(team="growth", feature="support")
    trace_id, _ = ask(keel, cx)
    keel.flush()
    # another team's trace is as unknown as a missing one (tests/feedback/test_tenancy.py)
    r = post(keel, "/api/feedback", {"trace_id": trace_id, "thumbs": "up"}, other)
    assert r.status_code == 404 and error(r)["param"] == "trace_id"
    assert "another team" not in error(r)["message"]
    assert get(keel, "/api/feedback", other, trace_id=trace_id).status_code == 404
    r = post(keel, "/api/outcomes", {"name": "ticket_resolved", "trace_ids": [trace_id]}, other)
    assert r.status_code == 404 and error(r)["param"] == "trace_ids"
    assert post(keel, "/api/feedback", {"trace_id": trace_id, "thumbs": "up"}, cx) \
        .status_code == 201
    assert post(keel, "/api/feedback", {"trace_id": trace_id, "thumbs": "up"}).status_code == 201
    r = post(keel, "/api/feedback", {"trace_id": trace_id, "thumbs": "up"}, "sk-keel-wrong")
    assert r.status_code == 401


# --- feedback keys and CORS ------------------------------------------------------------------


def test_feedback_key_writes_feedback_only(keel: Keel) -> None:
    r = post(keel, "/api/keys", {"team": "cx", "name": "web widget", "scope": "feedback",
                                 "origins": [APP + "/", "http://localhost:5173"]})
    assert r.status_code == 201, r.text
    fkey = r.json()["key"]
    assert r.json()["scope"] == "feedback"
    assert r.json()["origins"] == ["http://localhost:5173", APP]  # normalized, sorted
    listed = {k["id"]: k for k in get(keel, "/api/keys").json()["data"]}
    assert listed[r.json()["id"]]["scope"] == "feedback"

    gateway_key = keel.create_key(team="cx", feature="support")
    trace_id, _ = ask(keel, gateway_key)
    keel.flush()
    ok = post(keel, "/api/feedback", {"trace_id": trace_id, "thumbs": "up"}, fkey)
    assert ok.status_code == 201 and ok.json()["key_id"] == r.json()["id"]
    # a page may not pose as a reviewer or a judge
    posing = post(keel, "/api/feedback", {"trace_id": trace_id, "thumbs": "down",
                                          "source": "reviewer"}, fkey)
    assert posing.status_code == 403 and error(posing)["code"] == "source_not_allowed"
    assert post(keel, "/api/feedback", {"trace_id": trace_id, "thumbs": "down",
                                        "source": "reviewer"}, gateway_key).status_code == 201

    c = openai.OpenAI(base_url=keel.base_url, api_key=fkey, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as exc:
        c.chat.completions.create(model="mock", messages=USER)
    assert "feedback-only key" in str(exc.value)
    with pytest.raises(openai.PermissionDeniedError):
        c.models.list()
    for resp in (get(keel, "/api/traces", fkey), get(keel, f"/api/traces/{trace_id}", fkey),
                 get(keel, "/api/feedback", fkey, trace_id=trace_id), get(keel, "/api/keys", fkey),
                 post(keel, "/api/outcomes", {"name": "x", "feature": "support"}, fkey),
                 post(keel, "/v1/embeddings", {"model": "mock-embedding", "input": "x"}, fkey),
                 post(keel, "/v1/messages", {"model": "mock", "max_tokens": 5,
                                             "messages": USER}, fkey)):
        assert resp.status_code == 403, resp.text
        assert "feedback-only key" in resp.text

    growth_trace = old_trace(keel, start=time.time() - 30, answer="hi", team="growth")
    r = post(keel, "/api/feedback", {"trace_id": growth_trace, "thumbs": "up"}, fkey)
    assert r.status_code == 404 and error(r)["param"] == "trace_id"


def test_scope_and_origin_validation_on_key_creation(keel: Keel) -> None:
    for body, param in (({"team": "cx", "origins": [APP]}, "origins"),
                        ({"team": "cx", "scope": "admin"}, "scope"),
                        ({"team": "cx", "scope": "feedback", "origins": [APP + "/path"]},
                         "origins"),
                        ({"team": "cx", "scope": "feedback", "origins": ["*"]}, "origins"),
                        ({"team": "cx", "scope": "feedback", "origins": ["ftp://x.org"]},
                         "origins")):
        r = post(keel, "/api/keys", body)
        assert r.status_code == 400, (body, r.text)
        assert error(r)["param"] == param


def test_cors_preflight_and_request_follow_the_key_origins(keel: Keel) -> None:
    fkey = keel.create_key(team="cx", scope="feedback", origins=[APP])
    other_origin_key = keel.create_key(team="cx", scope="feedback", origins=[EVIL])
    start = time.time() - 30
    trace_id = old_trace(keel, start=start, answer="An answer.")
    url = f"{keel.url}/api/feedback"
    pre = {"access-control-request-method": "POST",
           "access-control-request-headers": "authorization, content-type"}

    r = httpx.options(url, headers={"origin": APP, **pre})
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == APP
    assert "POST" in r.headers["access-control-allow-methods"]
    allowed_headers = r.headers["access-control-allow-headers"]
    assert "authorization" in allowed_headers and "content-type" in allowed_headers
    assert r.headers["vary"] == "Origin"
    r = httpx.options(url, headers={"origin": "https://unknown.example.org", **pre})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    r = httpx.options(url, headers={"origin": APP, "access-control-request-method": "DELETE"})
    assert r.status_code == 403

    r = post(keel, "/api/feedback", {"trace_id": trace_id, "thumbs": "up"}, fkey,
             {"origin": APP})
    assert r.status_code == 201 and r.headers["access-control-allow-origin"] == APP
    # an origin some other feedback key allows is still not this key's
    r = post(keel, "/api/feedback", {"trace_id": trace_id, "thumbs": "up"}, fkey,
             {"origin": EVIL})
    assert r.status_code == 403 and error(r)["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in r.headers
    r = post(keel, "/api/feedback", {"trace_id": trace_id, "thumbs": "up"}, other_origin_key,
             {"origin": EVIL})
    assert r.status_code == 201 and r.headers["access-control-allow-origin"] == EVIL
    # errors are readable from an allowed origin, so the page can show why
    r = post(keel, "/api/feedback", {"trace_id": trace_id, "thumbs": "meh"}, fkey,
             {"origin": APP})
    assert r.status_code == 400 and r.headers["access-control-allow-origin"] == APP
    # gateway and admin keys never get CORS headers: they must not live in a browser
    r = post(keel, "/api/feedback", {"trace_id": trace_id, "thumbs": "up"}, None,
             {"origin": APP})
    assert r.status_code == 201 and "access-control-allow-origin" not in r.headers
    row = rollup_row(keel, start)
    assert row["feedback"] == 3  # the three accepted writes


async def test_key_ring_refuses_scoped_keys_unless_asked(store: Store) -> None:
    key, record = await create_key(store, team="cx", scope="feedback",
                                   origins=["https://A.example.com:8443/"])
    gateway, _ = await create_key(store, team="cx")
    ring = KeyRing(store, master_key=None)
    await ring.load()
    with pytest.raises(PermissionDenied, match="feedback-only key"):
        ring.authenticate(key)
    p = ring.authenticate(key, scope="feedback")
    assert (p.key_id, p.team, p.scope) == (record["id"], "cx", "feedback")
    assert ring.authenticate(gateway).scope is None
    assert ring.authenticate(gateway, scope="feedback").scope is None
    assert ring.feedback_origins == frozenset({"https://a.example.com:8443"})


# --- outcomes --------------------------------------------------------------------------------


def test_outcomes_are_stored_listed_and_rolled_up(keel: Keel) -> None:
    key = keel.create_key(team="cx", feature="support")
    trace_id, _ = ask(keel, key)
    keel.flush()
    at = time.time() - 3600
    r = post(keel, "/api/outcomes", {"name": "ticket_resolved", "feature": "support",
                                     "trace_ids": [trace_id, trace_id], "at": at})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["object"] == "outcome" and first["value"] == 1.0
    assert first["trace_ids"] == [trace_id] and first["team"] == "cx"
    # a gateway key bound to the feature: the feature is implied
    r = post(keel, "/api/outcomes", {"name": "ticket_resolved", "count": 3, "at": at}, key)
    assert r.status_code == 201 and r.json()["feature"] == "support" and r.json()["value"] == 3
    r = post(keel, "/api/outcomes", {"name": "refund_avoided", "value": 42.5, "id": "crm-1"},
             key)
    assert r.status_code == 201
    assert post(keel, "/api/outcomes", {"name": "refund_avoided", "value": 42.5, "id": "crm-1"},
                key).status_code == 200
    conflict = post(keel, "/api/outcomes", {"name": "refund_avoided", "value": 40,
                                            "id": "crm-1"}, key)
    assert conflict.status_code == 409 and "value" in error(conflict)["message"]

    roll = outcome_rollups(keel, "support", "ticket_resolved")
    assert roll["h"] == (bucket(at, "h"), 2, 4.0)
    assert roll["d"][1:] == (2, 4.0)
    assert outcome_rollups(keel, "support", "refund_avoided")["m"][1:] == (1, 42.5)

    listed = get(keel, "/api/outcomes", feature="support").json()["data"]
    assert [o["name"] for o in listed] == ["refund_avoided", "ticket_resolved",
                                          "ticket_resolved"]
    window = get(keel, "/api/outcomes", feature="support", since=at - 1, until=at + 1)
    assert [o["value"] for o in window.json()["data"]] == [3.0, 1.0]  # newest id first
    assert get(keel, "/api/outcomes", feature="billing").json()["data"] == []
    # a key bound to a feature sees (and writes) only that feature
    r = get(keel, "/api/outcomes", key, feature="billing")
    assert r.status_code == 403 and error(r)["code"] == "wrong_feature"
    r = post(keel, "/api/outcomes", {"name": "ticket_resolved", "feature": "billing"}, key)
    assert r.status_code == 403 and error(r)["code"] == "wrong_feature"
    other = keel.create_key(team="growth", feature="support")
    assert get(keel, "/api/outcomes", other).json()["data"] == []


BAD_OUTCOMES: list[tuple[dict[str, Any], int, str, str]] = [
    ({"feature": "support"}, 400, "name", "is required"),
    ({"name": "ticket resolved!", "feature": "support"}, 400, "name", "letters, digits"),
    ({"name": "t", "feature": "support", "value": "1"}, 400, "value", "finite number"),
    ({"name": "t", "feature": "support", "value": 1, "count": 1}, 400, "count", "not both"),
    ({"name": "t", "feature": "support", "count": 0}, 400, "count", "integer >= 1"),
    ({"name": "t"}, 400, "feature", "'feature' is required"),
    ({"name": "t", "feature": "support", "at": time.time() * 1000}, 400, "at",
     "not milliseconds"),
    ({"name": "t", "feature": "support", "at": time.time() + 2 * 86400}, 400, "at",
     "more than a day in the future"),
    ({"name": "t", "feature": "support", "trace_ids": "abc"}, 400, "trace_ids",
     "array of trace ids"),
    ({"name": "t", "feature": "support", "when": 1}, 400, "when", "unknown field"),
    ({"name": "t", "feature": "support", "trace_ids": ["a" * 32, "b" * 32]}, 404, "trace_ids",
     "a" * 32 + ", " + "b" * 32),
]


def test_bad_outcomes_are_refused_naming_the_field(keel: Keel) -> None:
    for body, status, param, hint in BAD_OUTCOMES:
        r = post(keel, "/api/outcomes", body)
        assert r.status_code == status, (body, r.text)
        assert error(r)["param"] == param, (body, error(r))
        assert hint in error(r)["message"], (body, error(r))
    unbound = keel.create_key(team="cx")
    r = post(keel, "/api/outcomes", {"name": "t"}, unbound)
    assert r.status_code == 400 and "not bound to a feature" in error(r)["message"]
    r = post(keel, "/api/outcomes", {"name": "t", "feature": "x", "team": "growth"}, unbound)
    assert r.status_code == 403
    assert get(keel, "/api/outcomes").json()["data"] == []
    assert get(keel, "/api/outcomes", limit=0).status_code == 400


# --- the client ------------------------------------------------------------------------------


def test_client_helper_against_a_live_keel(keel: Keel) -> None:
    key = keel.create_key(team="cx", feature="support")
    fkey = keel.create_key(team="cx", scope="feedback", origins=[APP])
    trace_id, answer = ask(keel, key)
    kf = KeelFeedback(keel.url, fkey)
    item = kf.feedback(trace_id, thumbs="up", outcome="edited",
                       corrected_text=answer + "!", score=("accuracy", 1.0), id="c-1")
    assert item["thumbs"] == "up" and item["edit_distance"] == 1
    assert item["score"] == {"name": "accuracy", "value": 1.0}
    assert kf.feedback(trace_id, thumbs="up", outcome="edited", corrected_text=answer + "!",
                       score=("accuracy", 1.0), id="c-1") == item
    with pytest.raises(KeelClientError) as exc:
        kf.feedback("f" * 32, thumbs="up")
    assert exc.value.status == 404 and "no trace with id" in str(exc.value)
    with pytest.raises(KeelClientError) as exc:
        kf.outcome("ticket_resolved", feature="support")
    assert exc.value.status == 403 and exc.value.code == "feedback_only_key"

    gk = KeelFeedback(keel.base_url, key)  # the /v1 base URL works too
    out = gk.outcome("ticket_resolved", trace_ids=[trace_id])
    assert out["feature"] == "support" and out["value"] == 1
    assert [f["id"] for f in gk.list_feedback(trace_id)] == ["c-1"]
    with pytest.raises(KeelClientError) as exc:
        gk.feedback(trace_id, thumbs="sideways")
    assert exc.value.status == 400 and exc.value.param == "thumbs"
    with pytest.raises(KeelClientError) as exc:
        KeelFeedback("http://127.0.0.1:9", key, timeout=2).feedback(trace_id, thumbs="up")
    assert exc.value.status is None and "could not reach keel" in str(exc.value)


# --- the command line ------------------------------------------------------------------------


def test_cli_creates_and_lists_feedback_keys(tmp_path: Path, database_url: str) -> None:
    env = {"KEEL_DATA_DIR": str(tmp_path / "data"), "KEEL_DATABASE_URL": database_url}
    runner = CliRunner()
    r = runner.invoke(main, ["keys", "create", "--team", "cx", "--scope", "feedback",
                             "--origin", APP, "--origin", "http://localhost:5173", "--json"],
                      env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    created = orjson.loads(r.output)
    assert created["scope"] == "feedback"
    assert created["origins"] == ["http://localhost:5173", APP]
    r = runner.invoke(main, ["keys", "list", "--json"], env=env, catch_exceptions=False)
    assert [(k["scope"], k["origins"]) for k in orjson.loads(r.output)] == [
        ("feedback", ["http://localhost:5173", APP])]
    r = runner.invoke(main, ["keys", "list"], env={**env, "COLUMNS": "200"},
                      catch_exceptions=False)
    assert "feedback (http://localhost:5173, https://app.example.com)" in r.output
    r = runner.invoke(main, ["keys", "create", "--team", "cx", "--origin", APP], env=env,
                      catch_exceptions=False)
    assert r.exit_code == 2 and "--scope feedback" in r.output
