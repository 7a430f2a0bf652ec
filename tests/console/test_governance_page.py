"""The governance page in a browser: the policies in force and their versions, the kill
switches (an operator stops a feature and the gateway refuses it at once, then starts it
again), and the audit log for auditors (its entries, verifying it, a tampered entry found,
the export downloaded); and what the server enforces whatever the browser does."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from keel.audit import verify_bundle
from keel.store.schema import audit_entries
from tests.console.conftest import axe_violations
from tests.console.support import ConsoleKeel, console_keel, login
from tests.console.support import session_with_csrf as _session


@pytest.fixture(scope="module")
def ck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleKeel]:
    with console_keel(tmp_path_factory.mktemp("governance"), requests=4) as ck:
        yield ck


def _switch_row(page: Page, feature: str) -> Locator:
    section = page.get_by_role("region", name="Kill switches")
    return section.locator("tbody tr", has=page.get_by_role("link", name=feature, exact=True))


def test_operator_stops_a_feature_and_the_gateway_refuses_it_then_starts_it(
        page: Page, ck: ConsoleKeel) -> None:
    login(page, ck.url, ck.keys["operator"])
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Governance").click()
    expect(page.get_by_role("heading", level=1, name="Governance")).to_be_visible()
    expect(page.get_by_role("heading", name="Audit log")).to_have_count(0)  # not an auditor
    row = _switch_row(page, "research")
    expect(row).to_contain_text("running")
    assert axe_violations(page) == []

    row.get_by_role("button", name="Stop research").click()  # no reason given
    expect(page.get_by_role("alert")).to_contain_text("'reason' is required")
    expect(_switch_row(page, "research")).to_contain_text("running")

    page.get_by_label("Reason to stop research").fill("answers quote the wrong prices")
    page.get_by_role("button", name="Stop research").click()
    expect(page.get_by_role("status").first).to_contain_text("feature research is stopped")
    row = _switch_row(page, "research")
    expect(row).to_contain_text("stopped")
    expect(row).to_contain_text("answers quote the wrong prices")
    operator = f"key:{ck.keel.state.keys.authenticate(ck.keys['operator']).key_id}"
    expect(row).to_contain_text(operator)
    assert axe_violations(page) == []

    refused = ck.chat("alpha", "research", "What is the price of plan B?")
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "feature_stopped"
    assert ck.chat("alpha", "support", "Where is my order?").status_code == 200

    row.get_by_role("button", name="Start research").click()
    expect(page.get_by_role("status").first).to_contain_text("research is running again")
    expect(_switch_row(page, "research")).to_contain_text("running")
    served = ck.chat("alpha", "research", "What is the price of plan B?")
    assert served.status_code == 200, served.text

    entries, _ = ck.keel.run(ck.keel.state.audit.entries(action="feature.", limit=10))
    assert [(e["action"], e["actor"], e["target"]) for e in entries[:2]] == [
        ("feature.start", operator, "research"), ("feature.stop", operator, "research")]


def test_policies_in_force_and_each_version_are_readable(page: Page, ck: ConsoleKeel) -> None:
    policy = ck.keel.state.gateway.policies.get("contracts-review")
    assert policy is not None
    login(page, ck.url, ck.keys["viewer"])
    page.goto(ck.url + "/governance")
    policies = page.get_by_role("region", name="Policies in force")
    row = policies.locator("tbody tr", has_text="contracts-review")
    expect(row).to_contain_text("features contracts")
    expect(row).to_contain_text("every answer, async, expires after 3,600 s")
    expect(policies.locator("tbody tr", has_text="support-guard")).to_contain_text(
        "injection → block")
    expect(page.get_by_role("button", name=re.compile("^Stop "))).to_have_count(0)

    row.get_by_role("link", name="All versions of contracts-review").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Policy contracts-review")
    version = page.locator("tbody tr", has_text=policy.version)
    expect(version).to_contain_text("in force")
    assert axe_violations(page) == []
    version.get_by_role("link", name=policy.version).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Policy contracts-review@{policy.version}")
    expect(page.locator("pre")).to_contain_text("timeout_s: 3600.0")
    expect(page.locator("pre")).to_contain_text("mode: async")
    assert axe_violations(page) == []


def test_auditor_verifies_and_exports_the_audit_log(page: Page, ck: ConsoleKeel,
                                                      tmp_path: Path) -> None:
    login(page, ck.url, ck.keys["auditor"])
    page.goto(ck.url + "/governance")
    audit = page.get_by_role("region", name="Audit log")
    expect(audit.locator("tbody tr").first).to_be_visible()
    expect(audit).to_contain_text("key.create")
    page.get_by_role("button", name="Verify now").click()
    expect(page).to_have_url(re.compile(r"/governance\?verify=1"))
    expect(page.get_by_role("status", name="Verification")).to_contain_text("verified: ok")
    assert axe_violations(page) == []

    page.get_by_label("Action").fill("key.create")
    page.get_by_role("button", name="Show").click()
    actions = page.get_by_role("region", name="Audit log").locator("tbody tr td:nth-child(3)")
    assert set(actions.all_inner_texts()) == {"key.create"}

    with page.expect_download() as download:
        page.get_by_role("link", name="Export the audit log (JSON)").click()
    assert download.value.suggested_filename.startswith("keel-audit-")
    saved = tmp_path / "audit.json"
    download.value.save_as(saved)
    bundle = json.loads(saved.read_text())
    assert {e["action"] for e in bundle["entries"]} >= {"key.create", "config.change"}
    assert verify_bundle(bundle, key=None).ok


def test_a_tampered_audit_entry_is_named_by_the_verification(page: Page,
                                                             tmp_path: Path) -> None:
    with console_keel(tmp_path, requests=1) as ck:
        store = ck.keel.state.store

        async def tamper() -> None:
            async with store.begin() as conn:
                await conn.execute(audit_entries.update().where(audit_entries.c.seq == 2)
                                   .values(actor="someone-else"))

        ck.keel.run(tamper())
        login(page, ck.url, ck.keys["auditor"])
        page.goto(ck.url + "/governance?verify=1")
        status = page.get_by_role("status", name="Verification")
        expect(status).to_contain_text("BROKEN")
        expect(status).to_contain_text("first broken entry #2")


def test_server_refuses_what_a_role_may_not_do(ck: ConsoleKeel) -> None:
    viewer, csrf = _session(ck, ck.keys["viewer"])
    page = viewer.get("/governance")
    assert page.status_code == 200 and "Audit log" not in page.text
    refused = viewer.post("/governance/switches/stop",
                          data={"csrf": csrf, "feature": "support", "reason": "x"},
                          headers={"origin": ck.url})
    assert refused.status_code == 403 and "operator" in refused.text
    assert "support" not in ck.keel.state.features.stopped  # type: ignore[union-attr]
    assert viewer.get("/governance/audit/export").status_code == 403
    assert viewer.get("/governance/reviews").status_code == 403

    auditor, _ = _session(ck, ck.keys["auditor"])
    export = auditor.get("/governance/audit/export")
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("application/json")
    assert export.headers["content-disposition"].startswith("attachment;")
    assert export.json()["format"] == "keel-audit-bundle"
    assert auditor.get("/governance", params={"before": "soon"}).status_code == 400
    assert auditor.get("/governance", params={"action": "<script>"}).status_code == 400

    operator, token = _session(ck, ck.keys["operator"])
    unknown = operator.post("/governance/switches/start", data={"csrf": token, "feature": ""},
                            headers={"origin": ck.url})
    assert unknown.status_code == 400
    assert operator.get("/governance/policies/nothing-here").status_code == 404
    assert operator.get("/governance/policies/contracts-review/0000").status_code == 404
