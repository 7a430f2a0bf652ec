"""The costs page in a browser, over a keel whose models have prices and whose teams and
features have budgets: the spend chart draws and its table holds the numbers
``GET /api/costs/spend`` gives, the stack switches to models, budgets show what
``GET /api/budgets`` shows, the costliest requests open their traces, a window whose prompts
grew says so, a team-scoped viewer sees its team only, and axe finds nothing serious."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from keel.console.formats import money
from keel.store.traces import insert_rows, trace_values
from keel.types import Trace, Usage, new_trace_id
from tests.console.conftest import axe_violations
from tests.console.support import CONFIG, ConsoleKeel, login
from tests.support.keel import running_keel

DAY = 86400
COSTS_CONFIG: dict[str, Any] = {
    **CONFIG,
    "models": [
        {"name": "mock-fast", "provider": "mock",
         "price": {"input_per_mtok": 1.0, "output_per_mtok": 4.0}},
        {"name": "mock-large", "provider": "mock",
         "price": {"input_per_mtok": 10.0, "output_per_mtok": 30.0}},
    ],
    "budgets": [
        {"scope": "team", "name": "alpha", "usd": 50, "period": "monthly"},
        {"scope": "team", "name": "beta", "usd": 20, "period": "weekly"},
        {"scope": "feature", "name": "support", "usd": 30, "period": "daily"},
    ],
}
# the cost-creep window: an hour 45 days back, after an hour of the same traffic with
# shorter prompts
CREEP_AT = math.floor((time.time() - 45 * DAY) / 3600) * 3600
CREEP = {"from": str(CREEP_AT), "to": str(CREEP_AT + 3600)}


def _stored_trace(start: float, team: str, input_tokens: int) -> Trace:
    t = Trace(id=new_trace_id(), start_time=start, endpoint="chat", feature="research",
              team=team, model_requested="mock-fast", model_served="mock-fast", attempts=1,
              usage=Usage(input_tokens=input_tokens, output_tokens=100))
    t.finish(200)
    t.end_time = start + 0.5
    t.cost_usd = (input_tokens * 1.0 + 100 * 4.0) / 1e6  # mock-fast's price
    return t


@pytest.fixture(scope="module")
def ck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleKeel]:
    with running_keel(tmp_path_factory.mktemp("costs"), COSTS_CONFIG) as k:
        ck = ConsoleKeel(k, k.url)
        for team in ("alpha", "beta"):
            ck.gateway_keys[team] = k.create_key(team=team, feature_override=True)
        ck.keys["viewer"] = k.create_key(team="alpha", role="viewer", name="viewer-key",
                                         org_wide=True)
        ck.team_keys["viewer"] = k.create_key(team="alpha", role="viewer", name="alpha-viewer")
        for i in range(12):
            r = ck.chat("alpha" if i % 3 else "beta", ("support", "research")[i % 2],
                        "Where is my order? " + "It has not arrived yet. " * (i * 4),
                        model=("mock-fast", "mock-large")[i % 2])
            assert r.status_code == 200, r.text
            ck.trace_ids.append(r.headers["x-keel-trace-id"])
        k.flush()
        # 30 requests an hour before CREEP_AT with 400-token prompts, 30 in the hour after
        # with 800-token ones: the same model, feature and volume
        stored = [_stored_trace(CREEP_AT - 3600 + i * 110, ("alpha", "beta")[i % 2], 400)
                  for i in range(30)]
        stored += [_stored_trace(CREEP_AT + i * 110, ("alpha", "beta")[i % 2], 800)
                   for i in range(30)]
        k.run(insert_rows(k.state.store, [trace_values(t) for t in stored], []))
        yield ck


def _week() -> dict[str, str]:
    """Seven whole UTC days ending with today's: the page and the spend API align the same."""
    start = math.floor(time.time() / DAY) * DAY - 6 * DAY
    return {"from": str(start), "to": str(start + 7 * DAY)}


def _api(ck: ConsoleKeel, path: str, key: str, **params: str) -> Any:
    r = httpx.get(ck.url + path, params=params, headers={"authorization": f"Bearer {key}"},
                  timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _query(params: dict[str, str]) -> str:
    return "?" + "&".join(f"{k}={v}" for k, v in params.items())


def _spend_table(page: Page) -> tuple[list[str], list[list[str]]]:
    page.get_by_text("as a table").click()
    table = page.locator("#spend-table")
    expect(table).to_be_visible()
    header = table.locator("thead th").all_inner_texts()
    rows = [r.locator("th, td").all_inner_texts() for r in table.locator("tbody tr").all()]
    return header, rows


def _drawn_pixels(page: Page) -> int:
    expect(page.locator(".chart canvas")).to_have_count(1)
    return int(page.evaluate("""() => {
        const c = document.querySelector('.chart canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) { if (d[i]) { n++; } }
        return n;
    }"""))


def test_spend_chart_and_table_match_the_spend_api(page: Page, ck: ConsoleKeel) -> None:
    week = _week()
    login(page, ck.url, ck.keel.admin_key)
    page.goto(ck.url + "/costs" + _query(week))
    expect(page.get_by_role("heading", level=1, name="Costs")).to_be_visible()
    assert _drawn_pixels(page) > 100
    header, rows = _spend_table(page)
    assert header[0] == "Day (UTC)" and header[-1] == "Total"
    features = header[1:-1]
    assert set(features) == {"support", "research"}
    api = _api(ck, "/api/costs/spend", ck.keel.admin_key, group_by="feature,day", **week)
    by_cell = {(r["day"], r["feature"]): r["cost_usd"] for r in api["data"]}
    assert len(rows) == 7
    spent_days = 0
    for day, *cells, row_total in rows:
        expected = [by_cell.get((day, f), 0.0) for f in features]
        assert cells == [money(v) for v in expected], day
        assert row_total == money(sum(expected)), day
        spent_days += any(expected)
    assert spent_days == 1  # all of it today
    assert axe_violations(page) == []

    # the spend card and the per-feature economics hold the API's totals, and link to
    # the traces behind them
    total = api["total"]["cost_usd"]
    expect(page.locator(".card", has_text="Spend").locator(".value a")).to_have_text(money(total))
    economics = page.locator("#unit-economics tbody tr", has_text="support")
    support = [r for r in api["data"] if r["feature"] == "support"]
    requests_link = economics.locator("td").first.get_by_role("link")
    expect(requests_link).to_have_text(str(sum(r["requests"] for r in support)))
    href = requests_link.get_attribute("href") or ""
    assert href.startswith("/traces?feature=support&") and f"from={week['from']}" in href
    expect(economics).to_contain_text("ticket_resolved")


def test_the_stack_switches_to_models_and_keeps_the_filter(page: Page, ck: ConsoleKeel) -> None:
    week = _week()
    login(page, ck.url, ck.keys["viewer"])  # a viewer may open the page
    page.goto(ck.url + "/costs" + _query(week))
    page.get_by_label("Stack by").select_option("model")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"/costs\?.*by=model"))
    assert _drawn_pixels(page) > 100
    header, rows = _spend_table(page)
    assert set(header[1:-1]) == {"mock-fast", "mock-large"}
    api = _api(ck, "/api/costs/spend", ck.keys["viewer"], group_by="model", **week)
    today = next(r for r in rows if r[-1] != "$0")
    for model, cell in zip(header[1:-1], today[1:-1], strict=True):
        assert cell == money(next(r["cost_usd"] for r in api["data"] if r["model"] == model))
    filters = page.get_by_role("form", name="Filter")
    filters.get_by_label("Feature").select_option("support")
    filters.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"feature=support.*by=model|by=model.*feature=support"))
    assert axe_violations(page) == []


def test_budgets_show_what_the_budgets_api_shows(page: Page, ck: ConsoleKeel) -> None:
    login(page, ck.url, ck.keel.admin_key)
    page.goto(ck.url + "/costs")
    api = _api(ck, "/api/budgets", ck.keel.admin_key)["data"]
    assert {(r["scope"], r["name"]) for r in api} == {
        ("team", "alpha"), ("team", "beta"), ("feature", "support")}
    rows = page.locator("#budgets tbody tr")
    expect(rows).to_have_count(len(api))
    for r in api:
        row = rows.filter(has_text=f"{r['scope']} {r['name']}")
        cells = row.locator("td").all_inner_texts()
        assert cells[1:5] == [money(r["spent"]), money(r["reserved"]), money(r["remaining"]),
                              money(r["usd"])]
        expect(row.locator("progress")).to_have_attribute("max", str(r["usd"]))
        expect(row).to_contain_text("At this rate:")
    alpha = rows.filter(has_text="team alpha")
    href = alpha.locator("td").nth(1).get_by_role("link").get_attribute("href") or ""
    assert href.startswith("/traces?team=alpha&from=")
    assert axe_violations(page) == []


def test_the_costliest_requests_open_their_traces(page: Page, ck: ConsoleKeel) -> None:
    login(page, ck.url, ck.keel.admin_key)
    page.goto(ck.url + "/costs" + _query(_week()))
    rows = page.locator("#costliest tbody tr")
    expect(rows).to_have_count(len(ck.trace_ids))
    costs = [float(t.strip("$")) for t in rows.locator("td:nth-child(6)").all_inner_texts()]
    assert costs == sorted(costs, reverse=True) and costs[0] > costs[-1]
    first = rows.first
    trace_id = first.locator("td").last.inner_text()
    assert trace_id in ck.trace_ids
    cost = first.locator("td:nth-child(6)").inner_text()
    first.get_by_role("link", name=cost).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(trace_id)
    expect(page.locator("dl.facts")).to_contain_text(cost)


def test_longer_prompts_are_named_as_what_changed(page: Page, ck: ConsoleKeel) -> None:
    login(page, ck.url, ck.keel.admin_key)
    page.goto(ck.url + "/costs" + _query(CREEP))
    expect(page.locator("#what-changed")).to_have_text(
        "Cost per request rose 50% ($0.0008 → $0.0012) while volume was flat: input tokens per "
        "request grew from 400 to 800 (prompts got longer); the model mix did not change.")
    expect(page.locator(".section-title .muted")).to_have_text(re.compile(
        r"^\d{4}-\d\d-\d\d \d\d:00:00 to \d{4}-\d\d-\d\d \d\d:00:00 UTC, against the 1h before$"))
    economics = page.locator("#unit-economics tbody tr", has_text="research")
    expect(economics.locator("td").nth(2)).to_contain_text("$0.0012")
    expect(page.locator("#costliest tbody tr")).to_have_count(20)
    assert axe_violations(page) == []


def test_a_team_scoped_viewer_sees_its_team_only(page: Page, ck: ConsoleKeel) -> None:
    week = _week()
    key = ck.team_keys["viewer"]
    login(page, ck.url, key)
    page.goto(ck.url + "/costs" + _query(week))
    teams = set(page.locator("#costliest tbody td:nth-child(3)").all_inner_texts())
    assert teams == {"alpha"}
    budgets = page.locator("#budgets tbody tr")
    expect(budgets).to_have_count(1)
    expect(budgets).to_contain_text("team alpha")
    _, rows = _spend_table(page)
    api = _api(ck, "/api/costs/spend", key, group_by="day", **week)
    today = next(r for r in rows if r[-1] != "$0")
    assert today[-1] == money(api["total"]["cost_usd"])
    assert today[-1] != money(_api(ck, "/api/costs/spend", ck.keel.admin_key,
                                   **week)["total"]["cost_usd"])
    page.get_by_label("Stack by").select_option("team")
    page.get_by_role("button", name="Show").click()
    header, _ = _spend_table(page)
    assert header[1:-1] == ["alpha"]


def test_an_unknown_stack_is_a_clear_400(ck: ConsoleKeel) -> None:
    with httpx.Client(base_url=ck.url, timeout=30) as c:
        form = c.get("/login")
        token = re.search(r'name="token" value="([^"]+)"', form.text)
        assert token is not None
        c.post("/login", data={"key": ck.keys["viewer"], "token": token.group(1), "next": "/"},
               headers={"origin": ck.url})
        r = c.get("/costs", params={"by": "prompt"})
        assert r.status_code == 400 and "&#39;by&#39; is one of feature, team, model" in r.text
        assert c.get("/costs", params={"by": "team"}).status_code == 200
