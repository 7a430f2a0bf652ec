"""Held answers on a live keel (both dialects): the reviewers' API (list, show, decide, bad
input), the client's poll (202 until decided, then the released answer or a 403; other
keys see a 404), the server's sweeper expiring overdue reviews, and the CLI."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from click.testing import CliRunner

from keel.cli.main import main
from keel.review import Review
from keel.store.reviews import get_review
from keel.types import new_trace_id
from tests.support.keel import Keel, running_keel

ANSWER = "Your refund of $120 was approved."
EDITED = "Your refund request was received; an agent will confirm it."


def completion(text: str = ANSWER) -> dict[str, Any]:
    return {"id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "mock",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}]}


def hold(k: Keel, *, key_id: str | None = None, timeout_s: float = 60.0,
         feature: str = "refunds", mode: str = "async") -> Review:
    review: Review = k.run(k.state.reviews.hold(
        trace_id=new_trace_id(), key_id=key_id, team="cx", feature=feature,
        policy="refunds-policy", policy_version="abc123", mode=mode,  # type: ignore[arg-type]
        reasons=[{"scanner": "money", "action": "review"}], timeout_s=timeout_s,
        request={"model": "mock", "messages": [{"role": "user", "content": "refund?"}]},
        completion=completion()))
    return review


def api(k: Keel, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{k.url}{path}", headers=k.admin_headers(), **kw)


def decide(k: Keel, review_id: str, **body: Any) -> httpx.Response:
    return api(k, "POST", f"/api/reviews/{review_id}/decision", json=body)


def poll(k: Keel, key: str, review_id: str) -> httpx.Response:
    return httpx.get(f"{k.base_url}/reviews/{review_id}",
                     headers={"authorization": f"Bearer {key}"})


def key_id_of(k: Keel, key: str) -> str:
    key_id = k.state.keys.authenticate(key).key_id
    assert key_id is not None
    return key_id


def test_reviewers_list_show_and_decide(tmp_path: Path, database_url: str) -> None:
    with running_keel(tmp_path, database_url=database_url) as k:
        a, b = hold(k), hold(k, feature="search")
        r = api(k, "GET", "/api/reviews", params={"status": "pending"})
        assert r.status_code == 200, r.text
        assert [x["id"] for x in r.json()["data"]] == [b.id, a.id]
        assert r.json()["next_cursor"] is None
        first = r.json()["data"][1]
        assert first["answer"] == ANSWER and first["status"] == "pending"
        assert "content" not in first  # the list is a summary
        only = api(k, "GET", "/api/reviews", params={"feature": "search"}).json()["data"]
        assert [x["id"] for x in only] == [b.id]
        paged = api(k, "GET", "/api/reviews", params={"limit": 1}).json()
        assert [x["id"] for x in paged["data"]] == [b.id] and paged["next_cursor"] == b.id
        rest = api(k, "GET", "/api/reviews",
                   params={"limit": 1, "cursor": paged["next_cursor"]}).json()
        assert [x["id"] for x in rest["data"]] == [a.id]

        shown = api(k, "GET", f"/api/reviews/{a.id}").json()
        assert shown["content"] == completion() and shown["content_hash"] == a.content_hash
        assert shown["request"]["messages"][0]["content"] == "refund?"
        assert shown["reasons"] == [{"scanner": "money", "action": "review"}]
        assert shown["policy"] == "refunds-policy" and shown["decision"] is None

        r = decide(k, a.id, decision="edit", content=EDITED, reason="softer")
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["status"] == "approved" and d["decision"]["decision"] == "edit"
        assert d["decision"]["by"] == "admin" and d["decision"]["reason"] == "softer"
        assert d["approved"]["choices"][0]["message"]["content"] == EDITED
        assert d["approved_hash"] != d["content_hash"]

        r = decide(k, b.id, decision="reject", reason="wrong product")
        assert r.status_code == 200 and r.json()["status"] == "rejected"
        listed = api(k, "GET", "/api/reviews", params={"status": "pending"}).json()["data"]
        assert listed == []

        entries = api(k, "GET", "/api/audit", params={"action": "review."}).json()["data"]
        assert [(e["action"], e["actor"], e["target"]) for e in entries] == [
            ("review.rejected", "admin", b.id), ("review.edited", "admin", a.id)]
        assert api(k, "GET", "/api/audit/verify").json()["ok"] is True


def test_bad_decisions_and_unknown_reviews_are_refused(
        tmp_path: Path, database_url: str) -> None:
    with running_keel(tmp_path, database_url=database_url) as k:
        r_ = hold(k)

        def error(r: httpx.Response, status: int) -> dict[str, Any]:
            assert r.status_code == status, r.text
            return dict(r.json()["error"])

        e = error(decide(k, r_.id, decision="maybe"), 400)
        assert e["param"] == "decision" and "approve, edit, reject" in e["message"]
        e = error(decide(k, r_.id, decision="edit"), 400)
        assert e["param"] == "content" and "required" in e["message"]
        e = error(decide(k, r_.id, decision="edit", content=""), 400)
        assert e["param"] == "content"
        e = error(decide(k, r_.id, decision="reject"), 400)
        assert e["param"] == "reason"
        e = error(decide(k, r_.id, decision="approve", note="x"), 400)
        assert e["param"] == "note" and "allowed: decision, reason, content" in e["message"]
        e = error(api(k, "POST", f"/api/reviews/{r_.id}/decision", content=b"{nope"), 400)
        assert "not valid JSON" in e["message"]
        e = error(decide(k, "rv_unknown", decision="approve"), 404)
        assert e["code"] == "not_found" and "rv_unknown" in e["message"]
        error(api(k, "GET", "/api/reviews/rv_unknown"), 404)
        e = error(api(k, "GET", "/api/reviews", params={"status": "done"}), 400)
        assert e["param"] == "status"
        error(api(k, "GET", "/api/reviews", params={"limit": "0"}), 400)
        assert httpx.get(f"{k.url}/api/reviews").status_code == 401  # no key

        assert decide(k, r_.id, decision="approve").status_code == 200
        e = error(decide(k, r_.id, decision="reject", reason="late"), 409)
        assert e["code"] == "review_closed" and "approved by admin" in e["message"]


def test_the_client_polls_its_review_until_released(
        tmp_path: Path, database_url: str) -> None:
    with running_keel(tmp_path, database_url=database_url) as k:
        mine = k.create_key(team="cx")
        theirs = k.create_key(team="cx")
        r_ = hold(k, key_id=key_id_of(k, mine))

        r = poll(k, mine, r_.id)
        assert r.status_code == 202, r.text
        assert r.json() == {"id": r_.id, "object": "keel.review", "status": "pending",
                            "expires_at": r_.expires_at, "poll": f"/v1/reviews/{r_.id}"}
        assert 1 <= int(r.headers["retry-after"]) <= 2
        assert r.headers["x-keel-review-id"] == r_.id

        other = poll(k, theirs, r_.id)  # another key: as if it did not exist
        assert other.status_code == 404 and r_.id in other.json()["error"]["message"]
        assert poll(k, mine, "rv_unknown").status_code == 404
        assert httpx.get(f"{k.base_url}/reviews/{r_.id}").status_code == 401

        assert decide(k, r_.id, decision="edit", content=EDITED).status_code == 200
        r = poll(k, mine, r_.id)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == EDITED
        assert r.json()["object"] == "chat.completion"
        assert r.headers["x-keel-review-id"] == r_.id
        assert r.headers["x-keel-trace-id"] == r_.trace_id
        assert poll(k, theirs, r_.id).status_code == 404
        admin = httpx.get(f"{k.base_url}/reviews/{r_.id}", headers=k.admin_headers())
        assert admin.status_code == 200 and admin.json() == r.json()
        released = api(k, "GET", f"/api/reviews/{r_.id}").json()
        assert released["released_at"] is not None


def test_rejected_and_expired_reviews_are_refused_to_the_client(
        tmp_path: Path, database_url: str) -> None:
    with running_keel(tmp_path, database_url=database_url) as k:
        key = k.create_key(team="cx")
        rejected = hold(k, key_id=key_id_of(k, key))
        assert decide(k, rejected.id, decision="reject",
                      reason="promises a refund").status_code == 200
        r = poll(k, key, rejected.id)
        assert r.status_code == 403
        e = r.json()["error"]
        assert e["code"] == "review_rejected" and "promises a refund" in e["message"]
        assert "admin" in e["message"] and r.headers["x-keel-review-id"] == rejected.id

        late = hold(k, key_id=key_id_of(k, key), timeout_s=0.3)
        time.sleep(0.4)
        r = poll(k, key, late.id)
        assert r.status_code == 403
        assert "no decision within 0.3 s" in r.json()["error"]["message"]
        assert decide(k, late.id, decision="approve").status_code == 409


def test_the_server_sweeps_overdue_reviews(tmp_path: Path, database_url: str) -> None:
    with running_keel(tmp_path, database_url=database_url) as k:  # sweeps every 0.2 s
        r_ = hold(k, timeout_s=0.2)
        deadline = time.monotonic() + 10
        row = k.run(get_review(k.state.store, r_.id))
        while row["status"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.1)
            row = k.run(get_review(k.state.store, r_.id))
        assert row["status"] == "expired"
        entries = api(k, "GET", "/api/audit", params={"action": "review.expired"}).json()
        assert [(e["actor"], e["target"]) for e in entries["data"]] == [("keel", r_.id)]


def test_cli_lists_shows_and_decides(tmp_path: Path, database_url: str) -> None:
    env = {"KEEL_DATA_DIR": str(tmp_path / "data"), "KEEL_DATABASE_URL": database_url,
           "USER": "dana"}

    def run(*args: str) -> tuple[int, str]:
        res = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        return res.exit_code, res.output

    with running_keel(tmp_path, database_url=database_url) as k:
        a, b, c = hold(k), hold(k), hold(k, feature="search")
        code, out = run("reviews", "list", "--status", "pending")
        assert code == 0 and a.id in out and b.id in out and c.id in out
        code, out = run("reviews", "list", "--feature", "search", "--json")
        assert code == 0 and [orjson.loads(x)["id"] for x in out.splitlines()] == [c.id]
        code, out = run("reviews", "show", a.id)
        assert code == 0 and ANSWER in out and "pending" in out and a.content_hash in out

        code, out = run("reviews", "approve", a.id, "--reason", "fine")
        assert code == 0 and f"approved {a.id}" in out
        text = tmp_path / "edit.txt"
        text.write_text(EDITED)
        code, out = run("reviews", "edit", b.id, "--content-file", str(text),
                        "--reviewer", "erin")
        assert code == 0 and f"approved {b.id} with your edit" in out
        code, out = run("reviews", "reject", c.id, "--reason", "off topic")
        assert code == 0 and f"rejected {c.id}" in out

        assert k.run(k.state.reviews.release(b.id))["choices"][0]["message"][
            "content"] == EDITED
        code, out = run("reviews", "show", b.id, "--json")
        shown = orjson.loads(out)
        assert shown["decision"]["by"] == "erin" and shown["decision"]["decision"] == "edit"
        code, out = run("reviews", "show", b.id)
        assert EDITED in out and "released" in out
        code, out = run("reviews", "list", "--status", "pending")
        assert code == 0 and "no reviews pending" in out

        code, out = run("reviews", "approve", a.id)  # decided already
        assert code == 2 and "closed (approved)" in out and "dana" in out
        code, out = run("reviews", "show", "rv_unknown")
        assert code == 1 and "no review with id 'rv_unknown'" in out
        code, out = run("reviews", "approve", "rv_unknown")
        assert code == 2 and "no review with id" in out
        code, out = run("reviews", "edit", a.id)
        assert code == 2 and "exactly one of --content or --content-file" in out
        code, out = run("reviews", "reject", a.id)
        assert code == 2 and "--reason" in out

        entries = api(k, "GET", "/api/audit", params={"action": "review."}).json()["data"]
        assert [(e["action"], e["actor"]) for e in reversed(entries)] == [
            ("review.approved", "dana"), ("review.edited", "erin"), ("review.rejected", "dana")]


def test_help_texts() -> None:
    for args in (["reviews"], ["reviews", "list"], ["reviews", "show"], ["reviews", "approve"],
                 ["reviews", "reject"], ["reviews", "edit"]):
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0 and "Usage: " in result.output, args
    result = CliRunner().invoke(main, ["--help"])
    assert "reviews" in result.output
