"""Team-scoped role keys on a live keel: two teams' traffic goes through the gateway (the mock
provider), and a team-scoped viewer or reviewer of one team lists, reads, filters and decides
only that team's traces, feedback, outcomes, spend, measures, reviews and budgets (another
team's trace or review is the same 404 as a missing one; a filter naming another team is a
403 ``wrong_team``), while an org-wide viewer sees both teams. Repricing needs an org-wide
key."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from keel.types import new_trace_id
from tests.support.keel import Keel, running_keel

CONFIG: dict[str, Any] = {
    "providers": [{"name": "mock", "kind": "mock", "latency": {"p50_ms": 0}}],
    "models": [{"name": "mock", "provider": "mock",
                "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.60}},
               {"name": "mock-embedding", "provider": "mock", "kind": "embedding"}],
    "policies": [{"name": "refunds-review", "features": ["refunds"],
                  "review": {"mode": "async", "timeout_s": 600}}],
    "budgets": [{"scope": "team", "name": "*", "usd": 100},
                {"scope": "key", "name": "*", "usd": 5},
                {"scope": "feature", "name": "*", "usd": 50}],
}
TEAMS = ("alpha", "beta")


@dataclass
class Team:
    name: str
    gateway: str  # the team's application key
    key_id: str
    trace: str  # an answered request of feature support
    held: str  # the trace of a request of feature refunds, held for review
    review: str


@dataclass
class World:
    k: Keel
    teams: dict[str, Team]
    viewer: str  # team-scoped, of alpha
    reviewer: str  # team-scoped, of alpha
    operator: str  # team-scoped, of alpha
    org_viewer: str  # org-wide, of team ops


def chat(k: Keel, key: str, feature: str, content: str) -> httpx.Response:
    return httpx.post(f"{k.base_url}/chat/completions", headers={
        "authorization": f"Bearer {key}", "x-keel-feature": feature},
        json={"model": "mock", "messages": [{"role": "user", "content": content}]})


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def call(w: World, key: str, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, w.k.url + path, headers=bearer(key), **kw)


def get(w: World, key: str, path: str, **params: Any) -> httpx.Response:
    return call(w, key, "GET", path, params=params)


def error(r: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = r.json()["error"]
    return body


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as mp:  # the per-test isolation comes too late here
        for name in [n for n in os.environ if n.startswith("KEEL_")
                     and not n.startswith("KEEL_TEST_")]:
            mp.delenv(name)
        with running_keel(tmp_path_factory.mktemp("scope"), CONFIG) as k:
            teams = {}
            for name in TEAMS:
                gateway = k.create_key(team=name)
                r = chat(k, gateway, "support", f"where is {name}'s parcel?")
                assert r.status_code == 200, r.text
                held = chat(k, gateway, "refunds", f"refund for {name}?")
                assert held.status_code == 202, held.text
                key_id = k.state.keys.authenticate(gateway).key_id
                assert key_id is not None
                teams[name] = Team(name, gateway, key_id, r.headers["x-keel-trace-id"],
                                   held.headers["x-keel-trace-id"], held.json()["id"])
            k.flush()
            for t in teams.values():
                r = httpx.post(f"{k.url}/api/feedback", headers=bearer(t.gateway),
                               json={"trace_id": t.trace, "thumbs": "up"})
                assert r.status_code == 201, r.text
                r = httpx.post(f"{k.url}/api/outcomes", headers=bearer(t.gateway), json={
                    "name": "ticket_resolved", "feature": "support", "trace_ids": [t.trace]})
                assert r.status_code == 201, r.text
            yield World(
                k, teams,
                viewer=k.create_key(team="alpha", name="alpha viewer", role="viewer"),
                reviewer=k.create_key(team="alpha", name="alpha reviewer", role="reviewer"),
                operator=k.create_key(team="alpha", name="alpha operator", role="operator"),
                org_viewer=k.create_key(team="ops", name="org viewer", role="viewer",
                                        org_wide=True))


def scoped(w: World) -> tuple[str, str]:
    """The team-scoped keys of alpha that read: its viewer and its reviewer."""
    return w.viewer, w.reviewer


# --- traces -----------------------------------------------------------------------------------


def test_a_team_scoped_viewer_lists_only_its_teams_traces(world: World) -> None:
    alpha, beta = world.teams["alpha"], world.teams["beta"]
    for key in scoped(world):
        r = get(world, key, "/api/traces")
        assert r.status_code == 200, r.text
        assert {t["team"] for t in r.json()["data"]} == {"alpha"}
        assert {t["id"] for t in r.json()["data"]} == {alpha.trace, alpha.held}
        # filters narrow within the team; they never reach the other one
        r = get(world, key, "/api/traces", key_id=beta.key_id)
        assert r.status_code == 200 and r.json()["data"] == []
        assert [t["id"] for t in get(world, key, "/api/traces", team="alpha",
                                     feature="support").json()["data"]] == [alpha.trace]


def test_a_team_scoped_viewer_filtering_another_team_is_refused(world: World) -> None:
    for key in scoped(world):
        for team in ("beta", "no-such-team"):  # the same answer: it says nothing of teams
            r = get(world, key, "/api/traces", team=team)
            assert r.status_code == 403, r.text
            assert error(r)["code"] == "wrong_team" and error(r)["param"] == "team"
            assert "reads team 'alpha' only" in error(r)["message"]
            assert "--org-wide" in error(r)["message"]


def test_another_teams_trace_is_the_same_404_as_a_missing_one(world: World) -> None:
    beta, missing = world.teams["beta"].trace, new_trace_id()
    for key in scoped(world):
        hidden, absent = (get(world, key, f"/api/traces/{t}") for t in (beta, missing))
        assert hidden.status_code == absent.status_code == 404
        assert hidden.json() == _swap(absent.json(), missing, beta)
        assert get(world, key, f"/api/traces/{world.teams['alpha'].trace}").status_code == 200


def test_an_org_wide_viewer_lists_reads_and_filters_every_team(world: World) -> None:
    alpha, beta = world.teams["alpha"], world.teams["beta"]
    r = get(world, world.org_viewer, "/api/traces")
    assert {t["team"] for t in r.json()["data"]} == {"alpha", "beta"}
    r = get(world, world.org_viewer, "/api/traces", team="beta")
    assert {t["id"] for t in r.json()["data"]} == {beta.trace, beta.held}
    for t in (alpha, beta):
        r = get(world, world.org_viewer, f"/api/traces/{t.trace}")
        assert r.status_code == 200 and r.json()["team"] == t.name


# --- feedback and outcomes --------------------------------------------------------------------


def test_a_team_scoped_viewer_reads_only_its_teams_feedback_and_outcomes(world: World) -> None:
    alpha, beta = world.teams["alpha"], world.teams["beta"]
    missing = new_trace_id()
    for key in scoped(world):
        r = get(world, key, "/api/feedback", trace_id=alpha.trace)
        assert r.status_code == 200 and [f["team"] for f in r.json()["data"]] == ["alpha"]
        hidden = get(world, key, "/api/feedback", trace_id=beta.trace)
        absent = get(world, key, "/api/feedback", trace_id=missing)
        assert hidden.status_code == absent.status_code == 404
        assert hidden.json() == _swap(absent.json(), missing, beta.trace)
        r = get(world, key, "/api/outcomes", feature="support")
        assert [o["team"] for o in r.json()["data"]] == ["alpha"], r.text
    r = get(world, world.org_viewer, "/api/feedback", trace_id=beta.trace)
    assert r.status_code == 200 and [f["team"] for f in r.json()["data"]] == ["beta"]
    r = get(world, world.org_viewer, "/api/outcomes", feature="support")
    assert sorted(o["team"] for o in r.json()["data"]) == ["alpha", "beta"]


# --- spend, measures, budgets -----------------------------------------------------------------


def test_a_team_scoped_viewer_reads_only_its_teams_spend(world: World) -> None:
    everyone = get(world, world.org_viewer, "/api/costs/spend", group_by="team").json()
    assert [row["team"] for row in everyone["data"]] == ["alpha", "beta"]
    alpha_row = next(row for row in everyone["data"] if row["team"] == "alpha")
    for key in scoped(world):
        r = get(world, key, "/api/costs/spend", group_by="team")
        assert r.status_code == 200, r.text
        assert r.json()["data"] == [alpha_row]
        assert r.json()["total"] == {k: v for k, v in alpha_row.items() if k != "team"}
        ungrouped = get(world, key, "/api/costs/spend").json()
        assert ungrouped["total"]["requests"] == alpha_row["requests"] == 2
        assert ungrouped["group_by"] == [] and "team" not in ungrouped["data"][0]
        by_day = get(world, key, "/api/costs/spend", group_by="day,team", format="csv")
        rows = list(csv.DictReader(io.StringIO(by_day.text)))
        assert {row["team"] for row in rows} == {"alpha"}
        r = get(world, key, "/api/costs/spend", team="beta")
        assert r.status_code == 403 and error(r)["code"] == "wrong_team", r.text
    only_beta = get(world, world.org_viewer, "/api/costs/spend", team="beta").json()
    assert only_beta["total"]["requests"] == 2 and len(everyone["data"]) == 2
    assert everyone["total"]["requests"] == 4


def test_a_team_scoped_viewer_reads_only_its_teams_measures(world: World) -> None:
    r = get(world, world.org_viewer, "/api/metrics/summary", group_by="team")
    assert [g["team"] for g in r.json()["groups"]] == ["alpha", "beta"], r.text
    for key in scoped(world):
        r = get(world, key, "/api/metrics/summary", group_by="team")
        assert r.status_code == 200, r.text
        assert [(g["team"], g["requests"]) for g in r.json()["groups"]] == [("alpha", 2)]
        r = get(world, key, "/api/metrics/summary", group_by="feature")
        assert {g["feature"]: g["requests"] for g in r.json()["groups"]} == {
            "refunds": 1, "support": 1}
        r = get(world, key, "/api/metrics/summary", team="beta")
        assert r.status_code == 403 and error(r)["code"] == "wrong_team", r.text


def test_a_team_scoped_viewer_sees_only_its_teams_budgets(world: World) -> None:
    alpha, beta = world.teams["alpha"], world.teams["beta"]
    everyone = {(b["scope"], b["name"]) for b in
                get(world, world.org_viewer, "/api/budgets").json()["data"]}
    assert everyone >= {("team", "alpha"), ("team", "beta"), ("key", alpha.key_id),
                        ("key", beta.key_id), ("feature", "support"), ("feature", "refunds")}
    for key in scoped(world):
        r = get(world, key, "/api/budgets")
        assert r.status_code == 200, r.text
        assert {(b["scope"], b["name"]) for b in r.json()["data"]} == {
            ("team", "alpha"), ("key", alpha.key_id)}


def test_repricing_and_its_events_need_an_org_wide_key(world: World) -> None:
    r = call(world, world.operator, "POST", "/api/costs/reprice",
             json={"model": "mock", "since": "1d", "dry_run": True})
    assert r.status_code == 403 and error(r)["code"] == "org_wide_required", r.text
    assert "reads team 'alpha' only" in error(r)["message"]
    for key in scoped(world):
        r = get(world, key, "/api/costs/events")
        assert r.status_code == 403 and error(r)["code"] == "org_wide_required", r.text
    assert get(world, world.org_viewer, "/api/costs/events").status_code == 200


# --- reviews ----------------------------------------------------------------------------------


def test_a_team_scoped_reviewer_lists_reads_and_decides_only_its_teams_reviews(
        world: World) -> None:
    alpha, beta = world.teams["alpha"], world.teams["beta"]
    missing = "rv_" + new_trace_id()[:29]
    for key in scoped(world):
        r = get(world, key, "/api/reviews")
        assert [x["id"] for x in r.json()["data"]] == [alpha.review], r.text
        r = get(world, key, "/api/reviews", team="beta")
        assert r.status_code == 403 and error(r)["code"] == "wrong_team", r.text
        hidden, absent = (get(world, key, f"/api/reviews/{i}") for i in (beta.review, missing))
        assert hidden.status_code == absent.status_code == 404
        assert hidden.json() == _swap(absent.json(), missing, beta.review)

    body = {"decision": "approve", "reason": "fine"}
    hidden, absent = (call(world, world.reviewer, "POST", f"/api/reviews/{i}/decision",
                           json=body) for i in (beta.review, missing))
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json() == _swap(absent.json(), missing, beta.review)
    r = get(world, world.org_viewer, f"/api/reviews/{beta.review}")
    assert r.status_code == 200 and r.json()["status"] == "pending"  # not decided

    r = get(world, world.org_viewer, "/api/reviews")
    assert {x["id"] for x in r.json()["data"]} == {alpha.review, beta.review}
    r = call(world, world.reviewer, "POST", f"/api/reviews/{alpha.review}/decision", json=body)
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text


def _swap(value: Any, old: str, new: str) -> Any:
    """``value`` with every ``old`` in its strings replaced by ``new``."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_swap(x, old, new) for x in value]
    if isinstance(value, dict):
        return {k: _swap(x, old, new) for k, x in value.items()}
    return value


def test_the_keys_reach_is_in_its_public_record(world: World) -> None:
    listed = {x["name"]: x for x in get(world, world.k.admin_key, "/api/keys").json()["data"]}
    assert listed["alpha viewer"]["org_wide"] is False
    assert listed["org viewer"]["org_wide"] is True
    assert {x["org_wide"] for x in listed.values() if x["role"] is None} == {None}
