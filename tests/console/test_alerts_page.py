"""The alerts page in a browser: an operator evaluates the rules now and sees a series in
alert with its reason, silences it with a reason (refused without one), sees it silenced,
lifts the silence; a viewer reads the page without the forms; and what the server
enforces whatever the browser does. Errors are written through the store's write path."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.console.conftest import axe_violations
from tests.console.support import ConsoleKeel, console_keel, login, session_with_csrf
from tests.monitor.alerts.history import Slice, write

RULES = {"alerts": {"builtins": False, "rules": [
    {"name": "support-errors", "measure": "error_rate", "window": "30m", "warning": 0.1,
     "critical": 0.25, "scope": {"by": "feature"}}]}}


@pytest.fixture(scope="module")
def ck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleKeel]:
    with console_keel(tmp_path_factory.mktemp("alerts"), requests=4, extra=RULES) as ck:
        now = time.time()
        ck.keel.run(write(ck.keel.state.store, [
            Slice(now - 900, now - 60, 40, feature="support", errors=16)], random.Random(7)))
        yield ck


def _row(page: Page, series: str) -> Locator:
    region = page.get_by_role("region", name="Rule series")
    return region.locator("tbody tr", has=page.get_by_role("link", name=series, exact=True))


def test_operator_evaluates_silences_and_lifts(page: Page, ck: ConsoleKeel) -> None:
    login(page, ck.url, ck.keys["operator"])
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Alerts").click()
    expect(page.get_by_role("heading", level=1, name="Alerts")).to_be_visible()
    page.get_by_role("button", name="Evaluate now").click()
    expect(page.get_by_role("status").first).to_contain_text("evaluated")
    row = _row(page, "feature=support")
    expect(row).to_contain_text("alert")
    expect(row).to_contain_text("firing")
    expect(row).to_contain_text("error rate 40% is above the critical level 25%")
    assert axe_violations(page) == []

    page.get_by_label("Feature").fill("support")
    page.get_by_role("button", name="Silence", exact=True).click()  # no reason
    expect(page.get_by_role("alert")).to_contain_text("needs a reason")
    page.get_by_label("Reason").fill("provider incident, tracked upstream")
    page.get_by_label("Duration").select_option("4h")
    page.get_by_role("button", name="Silence", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("silenced feature=support for 4h")
    expect(_row(page, "feature=support")).to_contain_text("silenced by sil_")
    silences = page.get_by_role("region", name="Silences in force")
    expect(silences).to_contain_text("provider incident, tracked upstream")
    assert axe_violations(page) == []

    silences.get_by_role("button", name="Lift").click()
    expect(page.get_by_role("status").first).to_contain_text("lifted")
    expect(_row(page, "feature=support")).not_to_contain_text("silenced")
    expect(page.get_by_role("region", name="Silences in force")).to_contain_text(
        "No silence is in force")
    expect(page.get_by_role("region", name="Receivers")).to_have_count(0)  # none configured
    rules = page.get_by_role("region", name="Rules")
    cells = rules.locator("tr", has_text="support-errors").locator("td")
    expect(cells).to_have_text(["support-errors", "error_rate", "threshold", "30m",
                                "per feature", "warning 0.1, critical 0.25 (above)", "0",
                                "–"])
    expect(rules.locator("tbody tr")).to_have_count(1)  # builtins: false
    transitions = page.get_by_role("region", name="Transitions, last 7 days")
    expect(transitions).to_contain_text("firing (alert)")


def test_a_viewer_reads_without_the_forms_and_the_server_refuses_it(
        page: Page, ck: ConsoleKeel) -> None:
    login(page, ck.url, ck.keys["viewer"])
    page.goto(ck.url + "/alerts")
    expect(page.get_by_role("heading", level=1, name="Alerts")).to_be_visible()
    expect(page.get_by_role("button", name="Silence", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Evaluate now")).to_have_count(0)
    c, csrf = session_with_csrf(ck, ck.keys["viewer"])
    r = c.post("/alerts/silence", data={"csrf": csrf, "feature": "support", "reason": "x",
                                        "duration": "1h"}, headers={"origin": ck.url})
    assert r.status_code == 403, r.text
    c, csrf = session_with_csrf(ck, ck.keys["operator"])
    r = c.post("/alerts/silence", data={"csrf": csrf, "feature": "support", "reason": "x",
                                        "duration": "90d0"}, headers={"origin": ck.url})
    assert r.status_code == 200 and "not silenced" in r.text
