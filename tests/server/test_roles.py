"""Roles on the admin API: every ``/api`` route declares the role it needs, and a walk over all
of them on a live keel shows the need enforced (no key: 401; a gateway key or a key of a role
that does not grant the need: 403 ``role_required``; a granted role: through to the handler,
for a team-scoped key too, except on the few routes that need an org-wide key). A second walk
shows that no route tells a team-scoped key another team's trace, review or team from ones
that do not exist. Role keys are refused by the gateway; changes are audited as the key that
made them."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner
from starlette.routing import BaseRoute, Mount, Route

from keel.cli.main import main
from keel.server import app
from keel.server.auth import ANY_KEY, GRANTS, NARROW_ROLES, PUBLIC, ROLES, required_role
from keel.types import new_trace_id
from tests.support.keel import Keel, running_keel

USER = [{"role": "user", "content": "hi"}]
# The only /api routes that take no key at all; adding one is a decision this list records.
PUBLIC_ROUTES = {("OPTIONS", "/api/feedback")}
# The /api routes a team-scoped key of a granted role is refused (403 org_wide_required): their
# answer, or their effect, spans every team's data. Adding one is a decision too.
ORG_WIDE_ROUTES = {("POST", "/api/costs/reprice"), ("GET", "/api/costs/events"),
                   ("POST", "/api/alerts/evaluate"), ("POST", "/api/alerts/test"),
                   ("GET", "/api/drift"),
                   ("GET", "/api/drift/{feature}"), ("POST", "/api/drift/{feature}/check")}
# Team-scoped keys of team ops (auditor and admin keys are org-wide only)
SCOPED_ROLES = ("operator", "reviewer", "viewer", "metrics")
PARAM = re.compile(r"\{[^}]+\}")
CONFIG: dict[str, Any] = {  # the default's mock models, and answers of 'refunds' held
    "providers": [{"name": "mock", "kind": "mock", "latency": {"p50_ms": 0}}],
    "models": [{"name": "mock", "provider": "mock",
                "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.60}},
               {"name": "mock-embedding", "provider": "mock", "kind": "embedding"}],
    "policies": [{"name": "refunds-review", "features": ["refunds"],
                  "review": {"mode": "async", "timeout_s": 600}}],
}


def _flatten(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _flatten(route.routes, prefix + route.path)
        else:
            yield prefix + getattr(route, "path", ""), route


def api_routes() -> list[tuple[str, str, Route]]:
    """(method, path, route) of every ``/api`` route the app serves (HEAD aside: Starlette
    adds it to every GET)."""
    out = []
    for path, route in _flatten(app.routes()):
        if not path.startswith("/api"):
            continue
        assert isinstance(route, Route), f"{path}: only plain routes are walked, got {route!r}"
        out += [(m, path, route) for m in sorted(route.methods or ()) if m != "HEAD"]
    return out


API_ROUTES = api_routes()


def route_id(item: tuple[str, str, Route]) -> str:
    return f"{item[0]} {item[1]}"


def error(r: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = r.json()["error"]
    return body


def call(k: Keel, method: str, path: str, key: str | None, **kw: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, k.url + path, headers=headers, **kw)


def concrete(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The path with dummy values for its parameters, and an empty JSON body for writes."""
    return PARAM.sub("dummy", path), ({} if method in ("GET", "OPTIONS") else {"json": {}})


# --- declared ---------------------------------------------------------------------------------


def test_the_walk_sees_the_admin_api() -> None:
    paths = {p for _, p, _ in API_ROUTES}
    assert {"/api/keys", "/api/traces", "/api/audit", "/api/prompts", "/api/features",
            "/api/feedback", "/api/costs/reprice"} <= paths


@pytest.mark.parametrize("item", API_ROUTES, ids=route_id)
def test_every_api_route_declares_the_role_it_needs(item: tuple[str, str, Route]) -> None:
    method, path, route = item
    role = required_role(route)
    assert role is not None, (
        f"{method} {path} declares no role: declare it with keel.server.auth.api_route(path, "
        "handler, methods, role)")
    assert role in (*ROLES, ANY_KEY, PUBLIC)
    assert (role == PUBLIC) == ((method, path) in PUBLIC_ROUTES), f"{method} {path}: {role}"


# --- enforced ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Keel, dict[str, str]]]:
    """A keel on SQLite, and a key of each kind, all of team ops: ``gateway`` (no role), one
    org-wide key per role, and ``scoped <role>`` team-scoped ones."""
    with pytest.MonkeyPatch.context() as mp:  # the per-test isolation comes too late here
        for name in [n for n in os.environ if n.startswith("KEEL_")
                     and not n.startswith("KEEL_TEST_")]:
            mp.delenv(name)
        # a trace that is not there is looked for this long before the 404
        with running_keel(tmp_path_factory.mktemp("roles"), CONFIG,
                          feedback_wait_s=0.3) as k:
            keys = {"gateway": k.create_key(team="ops")}
            for role in ROLES:
                keys[role] = k.create_key(team="ops", name=f"{role} key", role=role,
                                          org_wide=True)
            for role in SCOPED_ROLES:
                keys[f"scoped {role}"] = k.create_key(team="ops", name=f"scoped {role} key",
                                                      role=role)
            yield k, keys


@pytest.mark.parametrize("item", API_ROUTES, ids=route_id)
def test_every_api_route_enforces_its_role(
        live: tuple[Keel, dict[str, str]], item: tuple[str, str, Route]) -> None:
    k, keys = live
    method, path, route = item
    need = required_role(route)
    url, kw = concrete(method, path)
    if need == PUBLIC:  # a CORS preflight: no credentials, so no 401 either
        assert call(k, method, url, None, **kw).status_code != 401
        return
    for key in (None, "sk-keel-" + "0" * 60):
        r = call(k, method, url, key, **kw)
        assert r.status_code == 401, f"{method} {url} with key {key}: {r.status_code} {r.text}"
        assert error(r)["code"] == "invalid_api_key"

    callers = {"master": k.admin_key, **keys}
    for who, key in callers.items():
        r = call(k, method, url, key, **kw)
        held = ("admin" if who == "master" else None if who == "gateway"
                else who.removeprefix("scoped "))
        granted = (need == ANY_KEY and held not in NARROW_ROLES) or (
            held is not None and need in GRANTS[held])
        if granted and who.startswith("scoped ") and (method, path) in ORG_WIDE_ROUTES:
            assert r.status_code == 403, f"{who} on {method} {url}: {r.status_code} {r.text}"
            assert error(r)["code"] == "org_wide_required", r.text
        elif granted:
            assert r.status_code not in (401, 403), f"{who} on {method} {url}: {r.text}"
        else:
            assert r.status_code == 403, f"{who} on {method} {url}: {r.status_code} {r.text}"
            assert error(r)["code"] == "role_required", r.text
            assert f"'{need if need != ANY_KEY else held}'" in error(r)["message"]


# --- another team's data, to a team-scoped key ------------------------------------------------

OTHER = "cx-7f3a"  # another team than the keys' (ops)
MARKER = "parcel-quokka-41"  # words of that team's request, and so of the mock's answer


@pytest.fixture(scope="module")
def other_team(live: tuple[Keel, dict[str, str]]) -> dict[str, str]:
    """Team cx's data, made through the gateway: an answered request with feedback and an
    outcome, and a held one with its review. Returns what names it: its ids and team."""
    k, _ = live
    key = k.create_key(team=OTHER)
    chat = {"model": "mock", "messages": [{"role": "user", "content": f"where is {MARKER}?"}]}
    answered = call(k, "POST", "/v1/chat/completions", key, json=chat)
    held = httpx.post(f"{k.url}/v1/chat/completions", json=chat, headers={
        "authorization": f"Bearer {key}", "x-keel-feature": "refunds"})
    assert answered.status_code == 200 and held.status_code == 202, held.text
    trace = answered.headers["x-keel-trace-id"]
    k.flush()
    assert call(k, "POST", "/api/feedback", key, json={"trace_id": trace, "thumbs": "up"}
                ).status_code == 201
    assert call(k, "POST", "/api/outcomes", key, json={
        "name": "refund_closed", "feature": "refunds", "trace_ids": [trace]}).status_code == 201
    key_id = k.state.keys.authenticate(key).key_id
    assert key_id is not None
    return {"trace": trace, "held": held.headers["x-keel-trace-id"],
            "review": held.json()["id"], "key": key_id, "team": OTHER, "marker": MARKER}


def nothing_like(real: dict[str, str]) -> dict[str, str]:
    """Names of the same shapes that name nothing stored."""
    return {"trace": new_trace_id(), "held": new_trace_id(), "review": "rv_" + new_trace_id()[:29],
            "key": "0" * 12, "team": "nobody-7f3a", "marker": "nothing-here-41"}


def request_naming(method: str, path: str, names: dict[str, str],
                   team: bool) -> tuple[str, dict[str, Any]]:
    """``method path`` as a request about the data ``names`` names: its ids in the path and
    the query (``team=`` too, if ``team``), and bodies that would act on them."""
    ids = {"trace_id": names["trace"], "review_id": names["review"], "key_id": names["key"]}
    url = PARAM.sub(lambda m: ids.get(m.group(0)[1:-1], "dummy"), path)
    params = {"trace_id": names["trace"], "key_id": names["key"],
              **({"team": names["team"]} if team else {})}
    bodies: dict[str, Any] = {
        "/api/feedback": {"trace_id": names["trace"], "thumbs": "down"},
        "/api/outcomes": {"name": "refund_closed", "feature": "refunds",
                          "trace_ids": [names["trace"]]},
        "/api/reviews/{review_id}/decision": {"decision": "approve", "reason": "walk"}}
    if method in ("GET", "OPTIONS"):
        return url, {"params": params}
    return url, {"params": params, "json": bodies.get(path, {})}


@pytest.mark.parametrize("item", API_ROUTES, ids=route_id)
def test_no_route_tells_a_team_scoped_key_another_teams_data_from_none(
        live: tuple[Keel, dict[str, str]], other_team: dict[str, str],
        item: tuple[str, str, Route]) -> None:
    """To a team-scoped viewer, reviewer or operator of ops, every route answers a request
    naming cx's trace, review, key and team (or naming none: a list) exactly as it answers
    one naming ids and a team that do not exist: the same status and the same body, with the
    names swapped. So no list holds cx's traces, reviews or words, no read or decision
    reaches them, and a filter on cx is refused like a filter on any other team."""
    k, keys = live
    method, path, _ = item
    fake = nothing_like(other_team)
    for who in ("scoped viewer", "scoped reviewer", "scoped operator"):
        for team in (False, True):
            answers = []
            for names in (other_team, fake):
                url, kw = request_naming(method, path, names, team)
                answers.append(call(k, method, url, keys[who], **kw))
            real, none = answers
            seen = real.text
            for what, value in other_team.items():
                seen = seen.replace(value, fake[what])
            assert (real.status_code, seen) == (none.status_code, none.text), (
                f"{who} on {method} {path} (team filter: {team}): cx's data answers "
                f"{real.status_code} {real.text[:300]}; none answers "
                f"{none.status_code} {none.text[:300]}")


def test_an_org_wide_key_is_told_another_teams_data_from_none(
        live: tuple[Keel, dict[str, str]], other_team: dict[str, str]) -> None:
    """The walk above is not blind: the same requests by an org-wide viewer find cx's data."""
    k, keys = live
    fake = nothing_like(other_team)
    for path in ("/api/traces/{trace_id}", "/api/reviews/{review_id}", "/api/feedback"):
        (real_url, real_kw), (fake_url, fake_kw) = (
            request_naming("GET", path, names, False) for names in (other_team, fake))
        real = call(k, "GET", real_url, keys["viewer"], **real_kw)
        assert real.status_code == 200, real.text
        assert call(k, "GET", fake_url, keys["viewer"], **fake_kw).status_code == 404
    for path in ("/api/traces", "/api/reviews"):
        listed = call(k, "GET", path, keys["viewer"], params={"team": OTHER})
        assert other_team["marker"] in listed.text or other_team["review"] in listed.text
        listed = call(k, "GET", path, keys["scoped viewer"])
        assert listed.status_code == 200 and other_team["team"] not in listed.text


def test_master_key_and_admin_role_hold_every_role() -> None:
    assert GRANTS["admin"] == frozenset(ROLES)
    for role in ROLES:
        assert role in GRANTS[role]
        assert ("viewer" in GRANTS[role]) == (role not in NARROW_ROLES)
    assert GRANTS["metrics"] == {"metrics"}  # only GET /metrics


# --- role keys and the gateway ----------------------------------------------------------------


def test_a_role_key_is_refused_by_the_gateway(live: tuple[Keel, dict[str, str]]) -> None:
    k, keys = live
    chat = {"model": "mock", "messages": USER}
    for role in ROLES:
        r = call(k, "POST", "/v1/chat/completions", keys[role], json=chat)
        assert r.status_code == 403, r.text
        assert error(r)["code"] == "role_key_not_for_gateway"
        assert "use a gateway key" in error(r)["message"] and f"'{role}'" in error(r)["message"]
    key = keys["operator"]
    for method, path, kw in (
            ("POST", "/v1/embeddings", {"json": {"model": "mock-embedding", "input": "x"}}),
            ("POST", "/v1/messages", {"json": {"model": "mock", "max_tokens": 5,
                                               "messages": USER}}),
            ("GET", "/v1/models", {}), ("GET", "/v1/models/mock", {})):
        r = call(k, method, path, key, **kw)
        assert r.status_code == 403 and "use a gateway key" in r.text, f"{path}: {r.text}"
    # gateway keys and the master key keep working
    for key in (keys["gateway"], k.admin_key):
        assert call(k, "POST", "/v1/chat/completions", key, json=chat).status_code == 200
        assert call(k, "GET", "/v1/models", key).status_code == 200


def test_org_wide_keys_read_every_teams_feedback_and_other_keys_their_own(
        live: tuple[Keel, dict[str, str]]) -> None:
    k, keys = live
    cx = k.create_key(team="cx", feature="support")
    r = call(k, "POST", "/v1/chat/completions", cx, json={"model": "mock", "messages": USER})
    trace_id = r.headers["x-keel-trace-id"]
    k.flush()
    assert call(k, "POST", "/api/feedback", cx, json={"trace_id": trace_id, "thumbs": "up"}
                ).status_code == 201
    assert call(k, "POST", "/api/outcomes", cx, json={"name": "ticket_resolved"}
                ).status_code == 201
    for who in ("viewer", "auditor", "admin"):  # org-wide keys of team "ops"
        r = call(k, "GET", "/api/feedback", keys[who], params={"trace_id": trace_id})
        assert r.status_code == 200 and len(r.json()["data"]) == 1, r.text
        r = call(k, "GET", "/api/outcomes", keys[who], params={"feature": "support"})
        assert [o["team"] for o in r.json()["data"]] == ["cx"], r.text
    for who in ("gateway", "scoped viewer", "scoped reviewer"):  # as if it did not exist
        r = call(k, "GET", "/api/feedback", keys[who], params={"trace_id": trace_id})
        assert r.status_code == 404 and error(r)["param"] == "trace_id", r.text
        r = call(k, "GET", "/api/outcomes", keys[who], params={"feature": "support"})
        assert r.json()["data"] == [], r.text


# --- creating role keys -----------------------------------------------------------------------


def test_creating_a_key_with_an_unknown_role_names_the_valid_roles(
        live: tuple[Keel, dict[str, str]]) -> None:
    k, keys = live
    r = call(k, "POST", "/api/keys", k.admin_key, json={"team": "ops", "role": "superuser"})
    assert r.status_code == 400 and error(r)["param"] == "role", r.text
    assert all(role in error(r)["message"] for role in ROLES)
    r = call(k, "POST", "/api/keys", k.admin_key,
             json={"team": "ops", "role": "viewer", "scope": "feedback"})
    assert r.status_code == 400 and error(r)["param"] == "role", r.text
    r = call(k, "POST", "/api/keys", keys["admin"],
             json={"team": "ops", "role": "auditor", "org_wide": True})
    assert r.status_code == 201 and r.json()["role"] == "auditor", r.text
    assert r.json()["org_wide"] is True
    listed = {x["id"]: x for x in call(k, "GET", "/api/keys", k.admin_key).json()["data"]}
    assert listed[r.json()["id"]]["role"] == "auditor"
    assert {x["role"] for x in listed.values()} >= {None, *ROLES}


@pytest.mark.parametrize(("body", "says"), [
    ({"role": "auditor"}, "audit log, which spans every team"),
    ({"role": "admin", "org_wide": False}, "admin key is always org-wide"),
    ({"org_wide": True}, "for keys with a role"),
    ({"role": "viewer", "org_wide": "yes"}, "must be a boolean"),
], ids=["auditor-scoped", "admin-scoped", "gateway-org-wide", "not-a-boolean"])
def test_a_key_whose_reach_cannot_be_is_refused(
        live: tuple[Keel, dict[str, str]], body: dict[str, Any], says: str) -> None:
    k, _ = live
    r = call(k, "POST", "/api/keys", k.admin_key, json={"team": "ops", **body})
    assert r.status_code == 400 and error(r)["param"] == "org_wide", r.text
    assert says in error(r)["message"]


def test_role_keys_are_team_scoped_unless_created_org_wide(
        live: tuple[Keel, dict[str, str]]) -> None:
    k, _ = live
    made = {}
    for name, body in (("scoped", {"role": "viewer"}),
                       ("org", {"role": "viewer", "org_wide": True}),
                       ("admin", {"role": "admin"}), ("gateway", {})):
        r = call(k, "POST", "/api/keys", k.admin_key, json={"team": "ops", **body})
        assert r.status_code == 201, r.text
        made[name] = r.json()
    assert {n: m["org_wide"] for n, m in made.items()} == {
        "scoped": False, "org": True, "admin": True, "gateway": None}
    listed = {x["id"]: x for x in call(k, "GET", "/api/keys", k.admin_key).json()["data"]}
    assert {n: listed[m["id"]]["org_wide"] for n, m in made.items()} == {
        "scoped": False, "org": True, "admin": True, "gateway": None}


def test_changes_made_with_an_operator_key_are_audited_as_that_key(tmp_path: Path) -> None:
    with running_keel(tmp_path) as k:
        r = call(k, "POST", "/api/keys", k.admin_key,
                 json={"team": "ops", "name": "ana", "role": "operator"})
        assert r.status_code == 201, r.text
        operator, key_id = r.json()["key"], r.json()["id"]
        actor = f"key:{key_id}"

        stop = call(k, "POST", "/api/features/support/stop", operator,
                    json={"reason": "runaway loop"})
        assert stop.status_code == 200 and stop.json()["by"] == actor, stop.text
        pushed = call(k, "POST", "/api/prompts", operator, json={
            "name": "greeting", "model": "mock", "messages": [
                {"role": "system", "content": "Be brief."}], "author": "mallory"})
        assert pushed.status_code == 201, pushed.text
        assert pushed.json()["author"] == actor  # a role key may not pose as someone else
        assert call(k, "GET", "/api/audit", operator).status_code == 403

        r = call(k, "GET", "/api/audit", k.admin_key)
        entries = {e["action"]: e for e in r.json()["data"]}
        assert (entries["key.create"]["actor"], entries["key.create"]["detail"]["role"]) == (
            "admin", "operator")
        assert entries["feature.stop"]["actor"] == actor
        assert entries["prompt.push"]["actor"] == actor


# --- the command line -------------------------------------------------------------------------


def test_cli_creates_role_keys_and_lists_their_role(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from keel.cli import main as cli_main

    monkeypatch.setattr(cli_main.console, "width", 200)  # built at import: COLUMNS is too late
    env = {"KEEL_DATA_DIR": str(tmp_path / "data"),
           "KEEL_DATABASE_URL": f"sqlite:///{tmp_path / 'keel.db'}"}
    runner = CliRunner()
    r = runner.invoke(main, ["keys", "create", "--team", "ops", "--role", "reviewer", "--json"],
                      env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert orjson.loads(r.output)["role"] == "reviewer"
    assert orjson.loads(r.output)["org_wide"] is False  # team-scoped unless --org-wide
    r = runner.invoke(main, ["keys", "create", "--team", "cx"], env=env, catch_exceptions=False)
    assert r.exit_code == 0 and "reads" not in r.output, r.output  # a gateway key
    r = runner.invoke(main, ["keys", "create", "--team", "ops", "--role", "viewer",
                             "--org-wide"], env=env, catch_exceptions=False)
    assert r.exit_code == 0 and "reads every team" in r.output, r.output
    r = runner.invoke(main, ["keys", "create", "--team", "ops", "--role", "operator"],
                      env=env, catch_exceptions=False)
    assert r.exit_code == 0 and "reads team ops only" in r.output, r.output
    r = runner.invoke(main, ["keys", "list", "--json"], env=env, catch_exceptions=False)
    assert [(x["role"], x["org_wide"]) for x in orjson.loads(r.output)] == [
        ("reviewer", False), (None, None), ("viewer", True), ("operator", False)]
    r = runner.invoke(main, ["keys", "list"], env=env, catch_exceptions=False)
    assert "reviewer" in r.output and "gateway" in r.output
    cells = [[c.strip() for c in line.split("│")[1:-1]]
             for line in r.output.splitlines() if "active" in line]
    header = [c.strip() for c in next(x for x in r.output.splitlines() if " id " in x)
              .split("┃")[1:-1]]
    reads = [(row[header.index("role")], row[header.index("reads")]) for row in cells]
    assert reads == [("reviewer", "own team"), ("gateway", "-"), ("viewer", "all teams"),
                     ("operator", "own team")], r.output
    r = runner.invoke(main, ["keys", "create", "--team", "ops", "--role", "auditor"], env=env)
    assert r.exit_code == 2 and "--org-wide" in r.output
    r = runner.invoke(main, ["keys", "create", "--team", "ops", "--org-wide"], env=env)
    assert r.exit_code == 2 and "for keys with a role" in r.output
    r = runner.invoke(main, ["keys", "create", "--team", "ops", "--role", "root"], env=env)
    assert r.exit_code == 2 and "viewer" in r.output
    r = runner.invoke(main, ["keys", "create", "--team", "ops", "--role", "viewer",
                             "--scope", "feedback"], env=env, catch_exceptions=False)
    assert r.exit_code == 2 and "cannot also have scope" in r.output
