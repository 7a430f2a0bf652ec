"""The drift pages in a browser: an operator checks a feature whose traffic shifted and
reads the verdict, the descriptors' tests, the terms typical of each window and example
traces that open; a team's login is refused; the API gives the same report. Traces are
written through keel's write path (the drift windows test's traffic, ending now)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from keel.store.traces import insert_rows, payload_values, trace_values
from tests.console.conftest import axe_violations
from tests.console.support import ConsoleKeel, console_keel, login, session
from tests.monitor.test_drift_windows import BILLING, DAY, OUTAGE, trace


async def shifted_traffic(store: object, now: float) -> None:
    rng = random.Random(11)
    rows = [trace(rng, now - 8 * DAY + i * 7 * DAY / 600, BILLING, rng.randint(8, 16))
            for i in range(600)]
    rows += [trace(rng, now - DAY + i * DAY / 200, OUTAGE, rng.randint(25, 40))
             for i in range(200)]
    await insert_rows(store, [trace_values(t) for t in rows],  # type: ignore[arg-type]
                      [p for t in rows if (p := payload_values(t)) is not None])


@pytest.fixture(scope="module")
def ck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleKeel]:
    with console_keel(tmp_path_factory.mktemp("drift"), requests=2,
                      extra={"drift": {"sample": 200, "evaluate": False}}) as ck:
        ck.keel.run(shifted_traffic(ck.keel.state.store, time.time()))
        yield ck


def test_operator_checks_a_feature_and_reads_the_report(page: Page, ck: ConsoleKeel) -> None:
    login(page, ck.url, ck.keys["operator"])
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Drift").click()
    expect(page.get_by_role("heading", level=1, name="Drift")).to_be_visible()
    features = page.get_by_role("region", name="Features")
    expect(features).to_contain_text("not checked yet")
    assert axe_violations(page) == []
    page.get_by_role("button", name="Check support now").first.click()
    expect(page.get_by_role("status").first).to_contain_text("feature support checked: drifted")
    expect(page.get_by_role("heading", level=1, name="Drift of support")).to_be_visible()
    tests = page.get_by_role("region", name="Descriptors")
    expect(tests.locator("tr", has_text="request_chars")).to_contain_text("drift")
    texts = page.get_by_role("region", name="Texts")
    expect(texts).to_contain_text("Typical of the current window")
    current_terms = texts.locator("div > div").first
    assert any(word in current_terms.inner_text() for word in OUTAGE)
    assert axe_violations(page) == []
    texts.get_by_role("link").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Trace")

    page.goto(ck.url + "/drift")
    row = page.get_by_role("region", name="Features").locator(
        "tr", has=page.get_by_role("link", name="support", exact=True))
    expect(row).to_contain_text("drift")
    expect(row).to_contain_text("texts")


def test_a_team_login_is_refused_and_the_api_agrees(ck: ConsoleKeel) -> None:
    c = session(ck, ck.team_keys["viewer"])
    assert c.get("/drift").status_code == 403
    api = httpx.get(ck.url + "/api/drift/support",
                    headers={"authorization": f"Bearer {ck.keys['viewer']}"}, timeout=30)
    if api.status_code == 404:  # the other test did not run first: check now
        r = httpx.post(ck.url + "/api/drift/support/check",
                       headers={"authorization": f"Bearer {ck.keys['operator']}"}, timeout=60)
        assert r.status_code == 200, r.text
        api = httpx.get(ck.url + "/api/drift/support",
                        headers={"authorization": f"Bearer {ck.keys['viewer']}"}, timeout=30)
    assert api.status_code == 200, api.text
    latest = api.json()["latest"]
    assert latest["drifted"] is True and "texts" in latest["report"]["drifted_names"]
    listed = httpx.get(ck.url + "/api/drift",
                       headers={"authorization": f"Bearer {ck.keys['viewer']}"}, timeout=30)
    assert [r["feature"] for r in listed.json()["data"]] == ["support"]
    assert listed.json()["schedule"]["features"] == ["support", "contracts", "research"]
    refused = httpx.get(ck.url + "/api/drift", timeout=30, headers={
        "authorization": f"Bearer {ck.team_keys['viewer']}"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "org_wide_required"
