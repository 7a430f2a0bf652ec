"""Every console route, walked with every role, as the /api role test walks /api: the
server refuses what a role may not open or change (403), lets through what it may, sends
anyone without a session to the login page, and no page issues more than a handful of
queries. The walk reads the routes from the running app, so a page added later is walked
too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from starlette.routing import Route

from keel.console.routes import console_routes as build_routes
from keel.keys.roles import GRANTS
from tests.console.support import ConsoleKeel, console_keel, session

ROLES = ("viewer", "reviewer", "operator", "auditor", "admin")
MAX_QUERIES = 8  # "a handful": what any console page may issue to draw itself


@pytest.fixture(scope="module")
def ck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleKeel]:
    with console_keel(tmp_path_factory.mktemp("roles")) as ck:
        yield ck


def console_routes(ck: ConsoleKeel) -> list[tuple[str, str, str]]:
    """(method, path, role) of every console route that declares a role."""
    out = []
    for route in build_routes(ck.keel.state):  # the routes keel serve mounts
        if not isinstance(route, Route):
            continue
        role = getattr(route.endpoint, "required_role", None)
        assert isinstance(role, str), f"{route.path} declares no role"
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                out.append((method, route.path, role))
    return out


def concrete(path: str, ck: ConsoleKeel) -> str:
    """``path`` with its parameters filled: a real trace id, else a value that names
    nothing (an allowed role then gets a 404, never a 403)."""
    path = path.replace("{trace_id}", ck.trace_ids[0])
    return re.sub(r"\{[^}]+\}", "nothing-here", path)


def key_of(ck: ConsoleKeel, role: str) -> str:
    return ck.keel.admin_key if role == "admin" else ck.keys[role]


def test_the_walk_covers_the_pages(ck: ConsoleKeel) -> None:
    paths = {path for _, path, _ in console_routes(ck)}
    assert {"/", "/traces", "/traces/{trace_id}", "/login", "/logout"} <= paths


@pytest.mark.parametrize("role", ROLES)
def test_every_route_follows_the_role(ck: ConsoleKeel, role: str) -> None:
    c = session(ck, key_of(ck, role))
    csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/").text)
    assert csrf is not None
    for method, path, need in console_routes(ck):
        if need == "public" or path == "/logout":
            continue
        url = concrete(path, ck)
        if method == "GET":
            r = c.get(url, follow_redirects=False)
        else:
            r = c.post(url, data={"csrf": csrf.group(1)}, headers={"origin": ck.url},
                       follow_redirects=False)
        allowed = need in GRANTS[role]
        if allowed:
            assert r.status_code != 403, f"{role} refused {method} {path}: {r.text[-300:]}"
            assert r.status_code < 500, f"{role} {method} {path}: {r.status_code}"
        else:
            assert r.status_code == 403, f"{role} reached {method} {path} ({r.status_code})"
            assert need in r.text  # the page says which role it needs


def test_anonymous_is_sent_to_log_in(ck: ConsoleKeel) -> None:
    for method, path, need in console_routes(ck):
        if need == "public":
            continue
        r = httpx.request(method, ck.url + concrete(path, ck), follow_redirects=False,
                          headers={"origin": ck.url})
        assert r.status_code == 303, f"{method} {path}: {r.status_code}"
        assert r.headers["location"].startswith("/login")


def test_metrics_and_gateway_keys_cannot_log_in(ck: ConsoleKeel) -> None:
    metrics = ck.keel.create_key(team="ops", role="metrics", org_wide=True)
    for key in (metrics, ck.gateway_keys["alpha"]):
        c = httpx.Client(base_url=ck.url, timeout=30)
        token = re.search(r'name="token" value="([^"]+)"', c.get("/login").text)
        assert token is not None
        r = c.post("/login", data={"key": key, "token": token.group(1), "next": "/"},
                   headers={"origin": ck.url}, follow_redirects=False)
        assert r.status_code == 200 and "cannot open the console" in r.text
        assert c.get("/", follow_redirects=False).status_code == 303


def background(statement: str) -> bool:
    """A query keel's own background work issues while a page is drawn, not the page: the
    version checks of the key, prompt and switch pollers (keel_meta) and the review
    sweeper's search for decided answers whose feedback is not recorded yet."""
    text = " ".join(statement.split())
    return "FROM keel_meta" in text or ("FROM reviews" in text and "FROM feedback" in text)


def test_no_page_issues_more_than_a_handful_of_queries(ck: ConsoleKeel) -> None:
    counted: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counted.append(statement)

    engine = ck.keel.state.store.engine.sync_engine
    c = session(ck, ck.keel.admin_key)
    event.listen(engine, "before_cursor_execute", count)
    try:
        for method, path, need in console_routes(ck):
            if method != "GET" or need == "public" or ("{" in path and "{trace_id}" not in path):
                continue
            counted.clear()
            r = c.get(concrete(path, ck))
            assert r.status_code == 200, f"{path}: {r.status_code}"
            reads = [s for s in counted if not s.lstrip().upper().startswith(
                ("INSERT", "UPDATE", "DELETE", "PRAGMA")) and not background(s)]
            assert 0 < len(reads) <= MAX_QUERIES, f"{path}: {len(reads)} queries:\n" + \
                "\n".join(s[:120] for s in reads)
    finally:
        event.remove(engine, "before_cursor_execute", count)
