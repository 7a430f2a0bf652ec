"""The demo's story found in the console by a person: `keel demo`'s month (loaded by the
command, smaller), served, and walked in a browser: log in, read what moved, filter
by feature, open a trace from the list, find the cost creep on the costs page, approve a
held review, compare two eval runs, stop and restart a feature, and a viewer kept out of
what it may not open."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from keel.demo.home import DemoHome
from keel.demo.load import demo_config
from keel.server.app import create_app
from tests.console.conftest import axe_violations
from tests.support.servers import ThreadServer


@dataclass
class Served:
    home: DemoHome
    server: ThreadServer
    url: str
    key: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    path = tmp_path_factory.mktemp("story") / "keel-demo"
    loaded = subprocess.run(  # as a user loads it (smaller), in a process of its own
        [str(Path(sys.executable).with_name("keel")), "demo", "--no-serve", "--data-dir",
         str(path), "--requests", "1200", "--seed", "11"],
        capture_output=True, text=True, timeout=600)
    assert loaded.returncode == 0, loaded.stderr
    home = DemoHome(path)
    server = ThreadServer(create_app(home.settings(port=0), demo_config())).start()
    key = home.admin_key()
    assert key is not None
    try:
        yield Served(home, server, server.url, key)
    finally:
        server.stop()


def log_in(page: Page, url: str, key: str) -> None:
    page.goto(url + "/login")
    page.get_by_label("Key").fill(key)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1, name="Overview")).to_be_visible()


def test_the_story_is_found_in_the_console(page: Page, demo: Served) -> None:
    log_in(page, demo.url, demo.key)
    expect(page.locator("ul.notes")).to_contain_text("rework rate rose")
    assert axe_violations(page) == []
    # the prompt change that raised rework, on the feature it changed
    page.goto(demo.url + "/?feature=support-assistant")
    expect(page.locator("ul.notes")).to_contain_text("support-assistant: rework rate rose")

    # filter by feature, carried to the traces; open one
    page.get_by_label("Feature").select_option("contract-summariser")
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Traces").click()
    expect(page).to_have_url(re.compile(r"/traces\?feature=contract-summariser"))
    page.locator("main table tbody tr").first.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Trace")
    expect(page.locator("dl.facts")).to_contain_text("contract-summariser")

    # the cost creep: longer prompts at flat volume
    page.goto(demo.url + "/costs?feature=research-assistant")
    changed = page.locator("main").get_by_text(re.compile(r"Cost per request rose"))
    expect(changed).to_contain_text("prompts got longer")
    assert axe_violations(page) == []


def test_a_reviewer_approves_a_held_summary(page: Page, demo: Served) -> None:
    log_in(page, demo.url, demo.key)
    page.goto(demo.url + "/reviews")
    rows = page.locator("main table tbody tr")
    waiting = rows.count()
    assert waiting >= 1
    rows.first.get_by_role("link", name=re.compile(r"^Open ")).click()
    page.get_by_role("button", name=re.compile(r"^Approve")).first.click()
    page.goto(demo.url + "/reviews")
    expect(rows).to_have_count(waiting - 1)


def test_two_eval_runs_are_compared(page: Page, demo: Served) -> None:
    log_in(page, demo.url, demo.key)
    with httpx.Client(base_url=demo.url, timeout=30,
                      headers={"authorization": f"Bearer {demo.key}"}) as api:
        runs = api.get("/api/evals/runs", params={"limit": 2}).json()["data"]
    assert len(runs) == 2
    page.goto(demo.url + f"/evals/compare?a={runs[1]['id']}&b={runs[0]['id']}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Compare")
    expect(page.locator("main")).to_contain_text(re.compile(r"passed|failed"))
    assert axe_violations(page) == []


def test_an_operator_stops_and_restarts_a_feature(page: Page, demo: Served) -> None:
    log_in(page, demo.url, demo.key)
    page.goto(demo.url + "/governance")
    page.get_by_label(re.compile(r"[Rr]eason.*research-assistant|research-assistant.*[Rr]eason"))\
        .fill("answers cite a withdrawn policy")
    page.get_by_role("button", name="Stop research-assistant").click()
    expect(page.get_by_role("button", name="Start research-assistant")).to_be_visible()
    page.get_by_role("button", name="Start research-assistant").click()
    expect(page.get_by_role("button", name="Stop research-assistant")).to_be_visible()


def test_a_viewer_cannot_reach_what_it_may_not(page: Page, demo: Served) -> None:
    made = httpx.post(demo.url + "/api/keys", headers={"authorization": f"Bearer {demo.key}"},
                      json={"team": "support", "role": "viewer", "org_wide": True,
                            "name": "board viewer"}, timeout=30)
    assert made.status_code == 201, made.text
    log_in(page, demo.url, made.json()["key"])
    nav = page.get_by_role("navigation", name="Pages")
    expect(nav.get_by_role("link", name="Costs")).to_be_visible()
    expect(nav.get_by_role("link", name="Keys & settings")).to_have_count(0)
    expect(nav.get_by_role("link", name="Reviews")).to_have_count(0)
    for path in ("/keys", "/reviews"):  # the browser's session, asked directly
        answer = page.request.get(demo.url + path, max_redirects=0)
        assert answer.status == 403, (path, answer.status)
