"""The keys & settings page in a browser, as an admin uses it: creating a key (shown once),
calling the gateway with it, revoking it after confirming and seeing the gateway refuse it;
a key the service refuses to create explained on the form; the active config with its
secrets replaced and its hash as the audit log records it. And what the server enforces
whatever the browser does."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import axe_violations
from tests.console.support import CONFIG, ConsoleKeel, console_keel, login
from tests.console.support import session_with_csrf as _session
from tests.support.keel import running_keel


@pytest.fixture(scope="module")
def ck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleKeel]:
    with console_keel(tmp_path_factory.mktemp("keys"), requests=2) as ck:
        yield ck


def _chat(ck: ConsoleKeel, key: str) -> httpx.Response:
    return httpx.post(ck.keel.base_url + "/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {key}"},
                      json={"model": "mock-fast",
                            "messages": [{"role": "user", "content": "Hello"}]})


def test_admin_creates_a_key_sees_it_once_uses_it_and_revokes_it(
        page: Page, ck: ConsoleKeel) -> None:
    login(page, ck.url, ck.keel.admin_key)
    page.get_by_role("navigation", name="Pages").get_by_role(
        "link", name="Keys & settings").click()
    expect(page.get_by_role("heading", level=1, name="Keys & settings")).to_be_visible()
    assert axe_violations(page) == []

    page.get_by_label("Team", exact=True).fill("gamma")
    page.get_by_label("Name", exact=True).fill("ci-bot")
    page.get_by_label("Feature", exact=True).fill("support")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("alert")).to_contain_text("shown only this once")
    key = page.get_by_label("The new key").input_value()
    assert key.startswith("sk-keel-")
    assert axe_violations(page) == []

    served = _chat(ck, key)  # works at once, on the team and feature it was made for
    assert served.status_code == 200, served.text
    ck.keel.flush()
    trace = ck.admin("GET", f"/api/traces/{served.headers['x-keel-trace-id']}").json()
    assert (trace["team"], trace["feature"]) == ("gamma", "support")

    page.goto(ck.url + "/keys")  # shown once: never again
    assert key not in page.content()
    row = page.locator("tbody tr", has_text="ci-bot")
    expect(row).to_contain_text("gamma")
    expect(row).to_contain_text("gateway")
    expect(row).to_contain_text("active")

    row.get_by_role("link", name="Revoke ci-bot…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Revoke key ci-bot")
    page.get_by_role("button", name="Revoke key").click()  # not confirmed
    expect(page.get_by_role("alert")).to_contain_text("tick the box to confirm")
    assert _chat(ck, key).status_code == 200
    assert axe_violations(page) == []

    page.get_by_label(re.compile("Yes, revoke key")).check()
    page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_role("status")).to_contain_text("is revoked")
    expect(page.locator("tbody tr", has_text="ci-bot")).to_contain_text("revoked")
    refused = _chat(ck, key)
    assert refused.status_code == 401, refused.text

    entries, _ = ck.keel.run(ck.keel.state.audit.entries(action="key.", limit=2))
    assert [(e["action"], e["actor"]) for e in entries] == [("key.revoke", "admin"),
                                                           ("key.create", "admin")]


def test_a_key_the_service_refuses_is_explained_on_the_form(page: Page,
                                                            ck: ConsoleKeel) -> None:
    login(page, ck.url, ck.keel.admin_key)
    page.goto(ck.url + "/keys")
    page.get_by_label("Team", exact=True).fill("audit")
    page.get_by_label("Role", exact=True).select_option("auditor")
    page.get_by_label("Name", exact=True).fill("auditor-not-org-wide")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("alert")).to_contain_text("org-wide")
    expect(page.get_by_label("Team", exact=True)).to_have_value("audit")  # what was typed stays
    expect(page.get_by_label("Name", exact=True)).to_have_value("auditor-not-org-wide")
    expect(page.locator("tbody tr", has_text="auditor-not-org-wide")).to_have_count(0)

    page.get_by_label(re.compile("org-wide")).check()
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_label("The new key").input_value()
    c, _ = _session(ck, key)  # a role key: it opens the console with its role
    assert "auditor" in c.get("/").text and c.get("/governance/audit/export").status_code == 200


def test_settings_show_the_config_without_its_secrets(page: Page, tmp_path: Path) -> None:
    secret, header = "sk-live-0123456789abcdefghijklmnop", "hdr-secret-9876543210zyxwvu"
    config = {**CONFIG, "providers": [{
        "name": "mock", "kind": "mock", "api_key": secret,
        "headers": {"x-api-key": header, "x-team": "blue-team"}}]}
    with running_keel(tmp_path, config) as k:
        login(page, k.url, k.admin_key)
        page.goto(k.url + "/keys")
        shown = page.get_by_label("Active config (YAML)").inner_text()
        assert secret not in shown and header not in shown
        assert secret[-8:] not in page.content() and header[:12] not in page.content()
        assert "api_key: '[REDACTED]'" in shown and "x-team: blue-team" in shown
        assert "timeout_s: 3600.0" in shown  # the whole config, policies included
        recorded, _ = k.run(k.state.audit.entries(action="config.change", limit=1))
        facts = page.locator("dl.facts")
        expect(facts).to_contain_text(recorded[0]["after_hash"])
        expect(facts).to_contain_text("recorded")
        assert axe_violations(page) == []

        page.get_by_role("link", name="Leave out the defaults").click()
        short = page.get_by_label("Active config (YAML)").inner_text()
        assert "max_connections" not in short and "mock-fast" in short
        assert secret not in short


def test_server_refuses_what_a_role_may_not_do(ck: ConsoleKeel) -> None:
    viewer, csrf = _session(ck, ck.keys["viewer"])
    before = len(ck.admin("GET", "/api/keys").json()["data"])
    refused = viewer.post("/keys/create", data={"csrf": csrf, "team": "x"},
                          headers={"origin": ck.url})
    assert refused.status_code == 403 and "admin" in refused.text
    assert len(ck.admin("GET", "/api/keys").json()["data"]) == before
    assert viewer.get("/keys").status_code == 403

    operator, token = _session(ck, ck.keys["operator"])
    assert operator.get("/keys").status_code == 403
    target = ck.keel.state.keys.authenticate(ck.keys["viewer"]).key_id
    refused = operator.post(f"/keys/{target}/revoke", data={"csrf": token, "confirm": "yes"},
                            headers={"origin": ck.url})
    assert refused.status_code == 403
    assert viewer.get("/").status_code == 200  # still a working key

    admin, admin_csrf = _session(ck, ck.keel.admin_key)
    unknown = admin.post("/keys/0123456789ab/revoke",
                         data={"csrf": admin_csrf, "confirm": "yes"},
                         headers={"origin": ck.url})
    assert unknown.status_code == 404
    assert admin.get("/keys/nothing-here/revoke").status_code == 404


def test_a_feedback_only_key_posts_feedback_from_its_origin_only(page: Page,
                                                                 ck: ConsoleKeel) -> None:
    login(page, ck.url, ck.keel.admin_key)
    page.goto(ck.url + "/keys")
    page.get_by_label("Team", exact=True).fill("alpha")
    page.get_by_label("Name", exact=True).fill("help-widget")
    page.get_by_label(re.compile("feedback only")).check()
    page.get_by_label("Browser origins").fill("https://app.example.com")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_label("The new key").input_value()
    trace = ck.trace_ids[1]  # team alpha's
    sent = httpx.post(ck.url + "/api/feedback", timeout=30,
                      headers={"authorization": f"Bearer {key}",
                               "origin": "https://app.example.com"},
                      json={"trace_id": trace, "thumbs": 1})
    assert sent.status_code in (200, 201), sent.text
    elsewhere = httpx.post(ck.url + "/api/feedback", timeout=30,
                           headers={"authorization": f"Bearer {key}",
                                    "origin": "https://evil.example"},
                           json={"trace_id": trace, "thumbs": -1})
    assert elsewhere.status_code == 403
    assert _chat(ck, key).status_code == 403  # it calls no model
