"""Every console page, found by walking the routes keel serves, opened in the browser as the
admin: each renders without a console error or an uncaught exception (the `page` fixture
fails on either, a failed resource load included) and without a serious or critical
accessibility violation. A page added later is opened too."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from starlette.routing import Route

from keel.console.routes import console_routes
from tests.console.conftest import axe_violations
from tests.console.support import ConsoleKeel, console_keel, login


@pytest.fixture(scope="module")
def ck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleKeel]:
    with console_keel(tmp_path_factory.mktemp("every")) as ck:
        yield ck


def pages(ck: ConsoleKeel) -> list[str]:
    """The GET pages with a path that names nothing or a trace (others need a name only a
    page's own data gives; their modules' tests open them)."""
    out = []
    for route in console_routes(ck.keel.state):
        if isinstance(route, Route) and "GET" in (route.methods or ()) \
                and getattr(route.endpoint, "required_role", None) != "public":
            path = route.path.replace("{trace_id}", ck.trace_ids[0])
            path = path.replace("{review_id}", ck.review_ids[0])
            if "{" not in path and not path.endswith("/export"):
                out.append(path)
    return out


def test_every_page_renders_cleanly_and_accessibly(page: Page, ck: ConsoleKeel) -> None:
    login(page, ck.url, ck.keel.admin_key)
    opened = pages(ck)
    assert {"/", "/traces", "/costs", "/prompts", "/evals", "/reviews", "/governance",
            "/keys"} <= set(opened)
    for path in opened:
        response = page.goto(ck.url + path)
        assert response is not None and response.status == 200, (path, response)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        found = axe_violations(page)
        assert found == [], (path, [(v["id"], v["help"]) for v in found])
        assert not re.search(r"internal error in keel", page.content()), path
