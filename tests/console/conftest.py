"""Browser fixtures for the console's tests: Debian's chromium, driven by Playwright.

Playwright never downloads a browser here: `browser` launches the executable named by
KEEL_CHROMIUM (default /usr/bin/chromium, from Debian's `chromium` package). Without it the
browser tests are skipped, unless KEEL_TEST_REQUIRE_SERVICES=1 (CI), which makes them
mandatory. `page` fails its test when the page logged a console error or threw an uncaught
exception; `axe_violations` runs the vendored axe-core over a page.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, sync_playwright

from tests.conftest import REQUIRE_SERVICES

# Read once at import: the suite's autouse fixture clears KEEL_* settings for each test.
CHROMIUM = os.environ.get("KEEL_CHROMIUM", "/usr/bin/chromium")
AXE = Path(__file__).parent / "vendor" / "axe.min.js"


class PageErrors:
    """Records the console errors and uncaught exceptions of the pages it is attached to."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def attach(self, page: Page) -> PageErrors:
        page.on("console", self._console)
        page.on("pageerror", self._page_error)
        return self

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            self.messages.append(f"console error: {message.text}" + (f" ({where})" if where else ""))

    def _page_error(self, error: Error) -> None:
        self.messages.append(f"uncaught {error.name}: {error.message}")


# Package scope: one browser for every test under tests/console, closed before the rest
# of the suite runs. While Playwright's sync API is started it keeps its event loop marked
# as running in this thread, and every asyncio test after it would fail with "Cannot run
# the event loop while another loop is running"; for the same reason the tests here are
# plain functions, not `async def`.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        reason = (f"no Chromium at {CHROMIUM}: install Debian's chromium package "
                  "(apt-get install chromium) or set KEEL_CHROMIUM to run the browser tests")
        if REQUIRE_SERVICES:
            pytest.fail(f"KEEL_TEST_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    # Chromium's sandbox needs an unprivileged user; as root it refuses to start without this.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    opened = context.new_page()
    errors = PageErrors().attach(opened)
    yield opened
    context.close()
    if errors.messages:
        pytest.fail("the page reported errors:\n" + "\n".join(errors.messages), pytrace=False)


def axe_violations(page: Page, impact: Sequence[str] = ("serious", "critical")) -> list[dict[str, Any]]:
    """The axe-core violations of the page's current document whose impact is in `impact`.

    axe is added as a script from the page's own origin, answered by Playwright from the
    vendored file: the console's Content-Security-Policy refuses an inline script, which is
    what `add_script_tag(path=...)` would add.
    """
    url = page.evaluate("location.origin") + "/__keel_test_axe.min.js"
    page.route(url, lambda route: route.fulfill(path=AXE, content_type="text/javascript"))
    try:
        page.add_script_tag(url=url)
    finally:
        page.unroute(url)
    found: list[dict[str, Any]] = page.evaluate("async () => (await axe.run()).violations")
    return [v for v in found if v.get("impact") in impact]
