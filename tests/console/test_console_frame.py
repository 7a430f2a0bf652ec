"""The console's frame in a browser: logging in (and the refusals), the navigation a role
sees, the filter kept in the URL and across pages, the overview and the traces pages, no
console errors and no serious accessibility violations; and what the server enforces
whatever the browser does (sessions, CSRF, origin, roles, headers)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from keel.store.datasets import latest_version
from tests.console.conftest import axe_violations
from tests.console.support import ConsoleKeel, console_keel, login
from tests.console.support import session as _session


@pytest.fixture(scope="module")
def ck(tmp_path_factory: pytest.TempPathFactory) -> ConsoleKeel:
    with console_keel(tmp_path_factory.mktemp("console")) as ck:
        yield ck


def test_login_overview_filter_and_traces(page: Page, ck: ConsoleKeel) -> None:
    login(page, ck.url, ck.keel.admin_key)
    assert axe_violations(page) == []
    nav = page.get_by_role("navigation", name="Pages")
    expect(nav.get_by_role("link", name="Traces")).to_be_visible()
    # the requests card counts what the gateway answered (blocked and held included)
    expect(page.locator(".card", has_text="Requests").locator(".value")).to_contain_text(
        str(len(ck.trace_ids) + 2))
    # the contract summary held for review, counted (not listed) from the store
    expect(page.locator(".card", has_text="Held for review").locator(".value")).to_have_text(
        str(len(ck.review_ids)))
    # the injection the support policy blocked, counted from the rollups
    expect(page.locator(".card", has_text="Guardrail blocks").locator(".value")).to_contain_text(
        "1")

    page.get_by_label("Feature").select_option("research")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"/\?feature=research"))
    nav.get_by_role("link", name="Traces").click()
    expect(page).to_have_url(re.compile(r"/traces\?feature=research"))
    rows = page.locator("main table tbody tr")
    expect(rows).to_have_count(len(ck.trace_ids) // 2)
    for text in rows.locator("td:nth-child(2)").all_inner_texts():
        assert text == "research"
    assert axe_violations(page) == []

    rows.first.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Trace")
    expect(page.get_by_text("Where is my order number")).to_be_visible()
    expect(page.get_by_role("heading", name="Attempts")).to_be_visible()
    assert axe_violations(page) == []

    page.get_by_label("Dataset").fill("from-console")
    page.get_by_role("button", name="Add this trace").click()
    expect(page.get_by_role("status")).to_contain_text("added to dataset from-console")
    stored = ck.keel.run(latest_version(ck.keel.state.store, "from-console"))
    assert stored is not None and stored["version"] == 1


def test_bad_key_and_gateway_key_are_refused(page: Page, ck: ConsoleKeel) -> None:
    page.goto(ck.url + "/login")
    page.get_by_label("Key").fill("sk-keel-not-a-key")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown or revoked")
    page.get_by_label("Key").fill(ck.gateway_keys["alpha"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("gateway key")


def test_viewer_sees_no_operator_action(page: Page, ck: ConsoleKeel) -> None:
    login(page, ck.url, ck.keys["viewer"])
    expect(page.locator("header")).to_contain_text("viewer")
    page.goto(ck.url + f"/traces/{ck.trace_ids[0]}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Trace")
    expect(page.get_by_role("button", name="Add this trace")).to_have_count(0)


def test_server_enforces_sessions_csrf_origin_and_roles(ck: ConsoleKeel) -> None:
    anonymous = httpx.get(ck.url + "/traces", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login?next=")

    viewer = _session(ck, ck.keys["viewer"])
    page = viewer.get("/")
    assert page.status_code == 200
    headers = page.headers
    assert "script-src" not in headers["content-security-policy"]  # default-src 'self' rules
    assert headers["content-security-policy"].startswith("default-src 'self'")
    assert headers["x-frame-options"] == "DENY"
    cookie = next(c for c in viewer.cookies.jar if c.name == "keel_session")
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert cookie.get_nonstandard_attr("SameSite") in ("Strict", "strict")

    trace = ck.trace_ids[0]
    # a viewer may not add to a dataset, whatever the form says
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    refused = viewer.post(f"/traces/{trace}/dataset",
                          data={"csrf": csrf.group(1), "dataset": "x"},
                          headers={"origin": ck.url})
    assert refused.status_code == 403 and "operator" in refused.text

    operator = _session(ck, ck.keys["operator"])
    token = re.search(r'name="csrf" value="([^"]+)"', operator.get(f"/traces/{trace}").text)
    assert token is not None
    no_token = operator.post(f"/traces/{trace}/dataset", data={"dataset": "x"},
                             headers={"origin": ck.url})
    assert no_token.status_code == 403 and "CSRF" in no_token.text
    other_site = operator.post(f"/traces/{trace}/dataset",
                               data={"csrf": token.group(1), "dataset": "x"},
                               headers={"origin": "https://evil.example"})
    assert other_site.status_code == 403
    stolen = viewer.post(f"/traces/{trace}/dataset",  # another session's token
                         data={"csrf": token.group(1), "dataset": "x"},
                         headers={"origin": ck.url})
    assert stolen.status_code == 403
    done = operator.post(f"/traces/{trace}/dataset",
                         data={"csrf": token.group(1), "dataset": "ok-set"},
                         headers={"origin": ck.url}, follow_redirects=False)
    assert done.status_code == 303

    forged = httpx.get(ck.url + "/", cookies={"keel_session": "eyJrIjpudWxsfQ.forged.sig"},
                       follow_redirects=False)
    assert forged.status_code == 303


def test_bad_filter_is_a_clear_400_page(ck: ConsoleKeel) -> None:
    c = _session(ck, ck.keys["viewer"])
    r = c.get("/traces", params={"range": "forever"})
    assert r.status_code == 400 and "unknown range" in r.text and "7d" in r.text
    r = c.get("/traces", params={"from": "yesterday-ish"})
    assert r.status_code == 400 and "from" in r.text
    r = c.get("/traces/../../etc")
    assert r.status_code in (400, 404)
    assert c.get("/").status_code == 200  # and it keeps serving


def test_revoking_a_key_ends_its_sessions(tmp_path: Path) -> None:
    with console_keel(tmp_path, requests=2) as ck:
        key = ck.keel.create_key(team="alpha", role="viewer", name="short-lived")
        c = _session(ck, key)
        assert c.get("/").status_code == 200
        key_id = ck.keel.state.keys.authenticate(key).key_id
        assert ck.admin("DELETE", f"/api/keys/{key_id}").status_code == 200
        r = c.get("/", follow_redirects=False)
        assert r.status_code == 303 and "reason=ended" in r.headers["location"]


def test_overview_shows_the_audit_log_verified(ck: ConsoleKeel) -> None:
    c = _session(ck, ck.keys["viewer"])
    deadline = time.monotonic() + 30
    text = c.get("/").text  # the first view starts a verification in the background
    while "intact" not in text and time.monotonic() < deadline:
        time.sleep(0.2)
        text = c.get("/").text
    card = re.search(r"<h3>Audit log</h3>\s*<div class=\"value\">([^<]+)", text)
    assert card is not None and card.group(1).strip() == "intact"
    assert "entries verified at" in text


def test_a_team_scoped_viewer_sees_its_team_only(ck: ConsoleKeel) -> None:
    c = _session(ck, ck.team_keys["viewer"])
    listed = c.get("/traces", params={"limit": "200"})
    assert listed.status_code == 200
    teams = set(re.findall(r"<td>(alpha|beta)</td>", listed.text))
    assert teams == {"alpha"}
    assert 'name="team" value="alpha" readonly' in listed.text
    other = c.get("/traces", params={"team": "beta"})
    assert other.status_code == 404 and "team &#39;alpha&#39; only" in other.text
    beta_trace = next(t for i, t in enumerate(ck.trace_ids) if i % 3 == 0)  # beta's
    assert c.get(f"/traces/{beta_trace}").status_code == 404
    alpha_trace = next(t for i, t in enumerate(ck.trace_ids) if i % 3)
    assert c.get(f"/traces/{alpha_trace}").status_code == 200
    org = _session(ck, ck.keys["viewer"])
    assert set(re.findall(r"<td>(alpha|beta)</td>",
                          org.get("/traces", params={"limit": "200"}).text)) == {"alpha", "beta"}


def test_the_trace_list_pages_oldest_first_too(ck: ConsoleKeel) -> None:
    c = _session(ck, ck.keys["viewer"])
    seen: list[str] = []
    url: str | None = "/traces?order=oldest&limit=25"
    while url:
        r = c.get(url)
        assert r.status_code == 200
        seen += re.findall(r'<a class="mono" href="/traces/([0-9a-f]+)">', r.text)
        more = re.search(r'<a href="([^"]+)" rel="next">Newer</a>', r.text)
        url = more.group(1).replace("&amp;", "&") if more else None
    assert seen == sorted(seen) and set(ck.trace_ids) <= set(seen)
    assert c.get("/traces?order=sideways").status_code == 400
