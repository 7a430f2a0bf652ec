"""The console's prompts pages in a browser: the list (versions, labels, last change), a
prompt's page (versions, the side-by-side diff, the quality and cost of each version from
its traces, the history of label moves), an operator moving a label (and the audit log
recording it), and what the server refuses a viewer or bad input whatever the browser does.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from keel.console.pages.prompts import side_by_side
from tests.conftest import PG_URL, REQUIRE_SERVICES
from tests.console.conftest import axe_violations
from tests.console.support import ConsoleKeel, console_keel, login
from tests.console.support import session as _session

SYSTEM = "You answer support questions politely."
V1: dict[str, Any] = {
    "name": "support-reply", "model": "mock-fast", "message": "first version", "author": "ana",
    "messages": [{"role": "system", "content": SYSTEM},
                 {"role": "user", "content": "{{question}}"}]}
V2: dict[str, Any] = {
    **V1, "message": "shorter answers, steadier wording", "author": "ben",
    "params": {"temperature": 0.2},
    "messages": [{"role": "system", "content": SYSTEM + " Keep answers short."},
                 {"role": "user", "content": "{{question}}"}]}


def _off_loop(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` in a worker thread: while the package's browser is open, Playwright
    keeps an event loop marked running in this thread, and ``asyncio.run`` here refuses."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


def databases(dialect: str, tmp_path: Path) -> Iterator[str]:
    """A database URL of ``dialect`` (for a fixture to yield from). The suite's
    ``database_url`` creates its PostgreSQL database with ``asyncio.run`` in this thread,
    which the open browser forbids (see :func:`_off_loop`): this one makes (and drops) a
    database of its own off the loop."""
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'keel.db'}"
        return
    import asyncpg

    name = f"keel_console_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        _off_loop(admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # unreachable, auth, ...
        reason = f"postgres not reachable ({type(exc).__name__}: {exc})"
        if REQUIRE_SERVICES:
            pytest.fail(f"KEEL_TEST_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    try:
        yield f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        _off_loop(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from databases(request.param, tmp_path)


def push(ck: ConsoleKeel, body: dict[str, Any]) -> int:
    r = ck.admin("POST", "/api/prompts", json=body)
    assert r.status_code in (200, 201), r.text
    return int(r.json()["version"])


def label(ck: ConsoleKeel, name: str, lab: str, version: int, reason: str) -> None:
    r = ck.admin("PUT", f"/api/prompts/{name}/labels/{lab}",
                 json={"version": version, "reason": reason})
    assert r.status_code == 200, r.text


def ask(ck: ConsoleKeel, team: str, feature: str, prompt: str, question: str) -> str:
    """A request that names a registered prompt; the trace id."""
    r = httpx.post(ck.keel.base_url + "/chat/completions",
                   headers={"authorization": f"Bearer {ck.gateway_keys[team]}",
                            "x-keel-feature": feature},
                   json={"prompt": prompt, "variables": {"question": question}}, timeout=30)
    assert r.status_code == 200, r.text
    return r.headers["x-keel-trace-id"]


@pytest.fixture(scope="module")
def ck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleKeel]:
    """A keel whose prompt support-reply has two versions, production on v1: v1 served
    team alpha 3 requests and beta 2 (feature support), v2 served alpha 2 (research);
    two of alpha's v1 answers were accepted."""
    with console_keel(tmp_path_factory.mktemp("prompts"), requests=2) as ck:
        assert push(ck, V1) == 1 and push(ck, V2) == 2
        label(ck, "support-reply", "production", 1, "first release")
        alpha_v1 = [ask(ck, "alpha", "support", "support-reply@production",
                        f"Where is my refund for order {i}?") for i in range(3)]
        for i in range(2):
            ask(ck, "beta", "support", "support-reply@production", f"Can I return item {i}?")
            ask(ck, "alpha", "research", "support-reply@2", f"Summarise ticket {i}.")
        ck.keel.flush()
        for trace_id in alpha_v1[:2]:
            r = ck.admin("POST", "/api/feedback", json={"trace_id": trace_id,
                                                        "outcome": "accepted"})
            assert r.status_code in (200, 201), r.text
        yield ck


def quality_row(html: str, version: int) -> list[str]:
    """The cells of a version's row in the quality table of a prompt's page."""
    table = html.split('id="quality"', 1)[1].split("</table>", 1)[0]
    row = re.search(rf'<th scope="row">v{version}</th>(.*?)</tr>', table, re.S)
    assert row is not None, table
    return [re.sub(r"<[^>]+>", "", c).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]


def test_side_by_side_marks_added_removed_and_changed_lines() -> None:
    before = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
    after = ["a", "B", "c", "d", "e", "f", "g", "h", "i", "j", "k"]
    rows = side_by_side(before, after, context=1)
    assert [(r.kind, r.left, r.right) for r in rows] == [
        ("unchanged", "a", "a"), ("changed", "b", "B"), ("unchanged", "c", "c"),
        ("skipped", None, None), ("unchanged", "j", "j"), ("added", None, "k")]
    assert rows[3].skipped == 6
    assert [r.kind for r in side_by_side(["x", "y"], ["y"])] == ["removed", "unchanged"]
    assert side_by_side(["same"], ["same"]) == []
    indented = side_by_side(["k:", "  v: 1"], ["k:", "  v: 2"])
    assert indented[1].left == "\N{NO-BREAK SPACE}" * 2 + "v: 1"  # indentation stays visible


def test_prompt_list_shows_versions_labels_and_last_change(page: Page, ck: ConsoleKeel) -> None:
    login(page, ck.url, ck.keys["viewer"])
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Prompts").click()
    expect(page.get_by_role("heading", level=1, name="Prompts")).to_be_visible()
    row = page.locator("main table tbody tr", has_text="support-reply")
    expect(row).to_have_count(1)
    cells = row.locator("td")
    expect(cells.nth(0)).to_have_text("2")  # versions
    expect(cells.nth(1)).to_contain_text("production → v1")
    expect(cells.nth(2)).to_have_text("mock-fast")
    expect(cells.nth(3)).to_contain_text("admin: moved production to v1")
    expect(cells.nth(4)).to_have_text("7")  # every request that used the prompt
    assert axe_violations(page) == []


def test_prompt_page_shows_versions_diff_quality_and_history(page: Page,
                                                             ck: ConsoleKeel) -> None:
    login(page, ck.url, ck.keys["viewer"])
    page.goto(ck.url + "/prompts")
    page.get_by_role("link", name="support-reply").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("support-reply")

    versions = page.locator("table", has=page.locator("th", has_text="Content hash"))
    expect(versions.locator("tbody tr").first).to_contain_text("ben")
    expect(versions.locator("tbody tr").first).to_contain_text("shorter answers")
    expect(versions.locator("tbody tr").nth(1)).to_contain_text("production")

    # the latest two by default: v1 before, v2 after
    diff = page.locator("table.diff")
    expect(diff.locator("caption")).to_contain_text("from v1 (before) to v2 (after)")
    added = diff.locator("tbody tr", has_text="temperature: 0.2")
    expect(added).to_have_count(1)
    expect(added.locator("td").first).to_have_text("+ added")  # marked in words
    changed = diff.locator("tbody tr", has_text="Keep answers short.")
    expect(changed.locator("td").first).to_have_text("± changed")
    expect(changed.locator("td").nth(2)).to_contain_text(SYSTEM)
    assert axe_violations(page) == []

    # the other way round, through the form: the same line is removed
    page.get_by_label("Before").select_option("2")
    page.get_by_label("After").select_option("1")
    page.get_by_role("button", name="Show the diff").click()
    expect(page).to_have_url(re.compile(r"a=2&b=1"))
    removed = page.locator("table.diff tbody tr", has_text="temperature: 0.2")
    expect(removed.locator("td").first).to_have_text("\N{MINUS SIGN} removed")

    quality = page.locator("table", has=page.locator("th", has_text="p95 latency"))
    v1 = quality.locator("tbody tr", has=page.locator("th", has_text="v1"))
    expect(v1.locator("td").nth(0)).to_have_text("5")
    expect(v1.locator("td").nth(1)).to_have_text("100.0%")  # 2 accepted of 2 judged
    expect(v1.get_by_role("link", name="support")).to_have_attribute(
        "href", re.compile(r"/traces\?feature=support"))
    v2 = quality.locator("tbody tr", has=page.locator("th", has_text="v2"))
    expect(v2.locator("td").nth(0)).to_have_text("2")
    expect(v2.get_by_role("link", name="research")).to_be_visible()

    history = page.locator("table", has=page.locator("th", has_text="Reason"))
    expect(history.locator("tbody tr").first).to_contain_text("created at v1")
    expect(history.locator("tbody tr").first).to_contain_text("first release")
    expect(page.get_by_role("button", name="Move label")).to_have_count(0)  # a viewer
    assert axe_violations(page) == []


def test_a_team_key_sees_its_own_teams_numbers(ck: ConsoleKeel) -> None:
    org = _session(ck, ck.keys["viewer"]).get("/prompts/support-reply")
    team = _session(ck, ck.team_keys["viewer"]).get("/prompts/support-reply")
    assert org.status_code == team.status_code == 200
    assert quality_row(org.text, 1)[0] == "5"
    assert quality_row(team.text, 1)[0] == "3"  # team alpha's requests only
    assert quality_row(team.text, 2)[0] == "2"


def test_an_operator_moves_a_label_and_the_history_shows_it(page: Page,
                                                            ck: ConsoleKeel) -> None:
    body = {**V1, "name": "welcome"}
    assert push(ck, body) == 1
    assert push(ck, {**V2, "name": "welcome"}) == 2
    label(ck, "welcome", "production", 1, "first release")

    login(page, ck.url, ck.keys["operator"])
    page.goto(ck.url + "/prompts/welcome")
    page.get_by_label("Label", exact=True).fill("production")
    page.get_by_label("To version").select_option("2")
    page.get_by_label("Reason").fill("shorter answers tested")
    page.get_by_role("button", name="Move label").click()
    expect(page.get_by_role("status")).to_have_text(
        "label production now points at version 2 (was version 1)")
    operator = ck.keel.state.keys.authenticate(ck.keys["operator"]).key_id
    latest = page.locator("table", has=page.locator("th", has_text="Reason")).locator(
        "tbody tr").first
    expect(latest).to_contain_text("v1 → v2")
    expect(latest).to_contain_text(f"key:{operator}")
    expect(latest).to_contain_text("shorter answers tested")
    assert axe_violations(page) == []

    assert ck.keel.state.prompts.labels_of("welcome")["production"] == 2
    entries, _ = ck.keel.run(ck.keel.state.audit.entries(action="prompt.label", limit=5))
    moved = entries[0]
    assert moved["target"] == "welcome@production" and moved["actor"] == f"key:{operator}"
    assert moved["detail"]["from_version"] == 1 and moved["detail"]["to_version"] == 2
    assert moved["detail"]["reason"] == "shorter answers tested"

    # a request that names the label now gets version 2
    trace_id = ask(ck, "alpha", "support", "welcome@production", "Hello?")
    ck.keel.flush()
    trace = ck.admin("GET", f"/api/traces/{trace_id}").json()
    assert trace["prompt_version"] == 2


def test_a_viewer_may_not_move_a_label(ck: ConsoleKeel) -> None:
    viewer = _session(ck, ck.keys["viewer"])
    shown = viewer.get("/prompts/support-reply")
    assert shown.status_code == 200 and "Move label" not in shown.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', shown.text)
    assert csrf is not None
    refused = viewer.post("/prompts/support-reply/labels",
                          data={"csrf": csrf.group(1), "label": "production", "version": "2"},
                          headers={"origin": ck.url})
    assert refused.status_code == 403 and "operator" in refused.text
    assert ck.keel.state.prompts.labels_of("support-reply")["production"] == 1

    operator = _session(ck, ck.keys["operator"])
    no_token = operator.post("/prompts/support-reply/labels",
                             data={"label": "production", "version": "2"},
                             headers={"origin": ck.url})
    assert no_token.status_code == 403 and "CSRF" in no_token.text
    assert ck.keel.state.prompts.labels_of("support-reply")["production"] == 1


def test_bad_input_is_a_clear_4xx(ck: ConsoleKeel) -> None:
    c = _session(ck, ck.keys["operator"])
    missing = c.get("/prompts/no-such-prompt")
    assert missing.status_code == 404 and "no prompt named" in missing.text
    for query, param in (({"a": "9"}, "a"), ({"b": "two"}, "b"), ({"a": "-1"}, "a")):
        r = c.get("/prompts/support-reply", params=query)
        assert r.status_code == 400 and f"<code>{param}</code>" in r.text, r.text
    page = c.get("/prompts/support-reply")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    for form, param in (({"label": "production", "version": "9"}, "version"),
                        ({"label": "production", "version": "v2"}, "version"),
                        ({"label": "latest", "version": "2"}, "label"),
                        ({"label": "prod@x", "version": "2"}, "label"),
                        ({"label": " ", "version": "2"}, "label"),
                        ({"label": "x" * 65, "version": "2"}, "label")):
        r = c.post("/prompts/support-reply/labels", data={"csrf": csrf.group(1), **form},
                   headers={"origin": ck.url})
        assert r.status_code == 400 and f"<code>{param}</code>" in r.text, (form, r.text)
    r = c.post("/prompts/no-such-prompt/labels",
               data={"csrf": csrf.group(1), "label": "production", "version": "1"},
               headers={"origin": ck.url})
    assert r.status_code == 404
    assert ck.keel.state.prompts.labels_of("support-reply")["production"] == 1
    assert c.get("/prompts").status_code == 200  # and it keeps serving


def test_prompt_pages_read_both_dialects(tmp_path: Path, any_database: str) -> None:
    with console_keel(tmp_path, requests=1, database_url=any_database) as ck:
        push(ck, V1)
        push(ck, V2)
        label(ck, "support-reply", "production", 2, "ship it")
        ask(ck, "alpha", "support", "support-reply@production", "Where is my refund?")
        ck.keel.flush()
        c = _session(ck, ck.keel.admin_key)
        listed = c.get("/prompts")
        assert listed.status_code == 200 and "production → v2" in listed.text
        assert "admin: moved production to v2" in listed.text
        shown = c.get("/prompts/support-reply")
        assert shown.status_code == 200 and "ship it" in shown.text
        assert quality_row(shown.text, 2)[0] == "1"
        assert "temperature: 0.2" in shown.text
