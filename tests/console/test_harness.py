"""The browser harness end to end, before any console page exists: the vendored htmx and
uPlot load from the package's static directory under a strict Content-Security-Policy, a
chart draws, an htmx swap works, axe finds nothing serious, and the error recorder catches
what a console page must never do."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.console.conftest import PageErrors, axe_violations

CSP = "default-src 'self'"

INDEX = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Harness</title>
  <link rel="stylesheet" href="/static/vendor/uPlot.min.css">
  <script src="/static/vendor/htmx.min.js"></script>
  <script src="/static/vendor/uPlot.iife.min.js"></script>
  <script src="/chart.js" defer></script>
</head>
<body>
  <main>
    <h1>Harness</h1>
    <div id="chart"></div>
    <button type="button" hx-get="/fragment.html" hx-target="#swapped">Load</button>
    <p id="swapped">Not loaded yet</p>
  </main>
</body>
</html>
"""

CHART = """new uPlot(
  {title: "Requests", width: 480, height: 240,
   series: [{}, {label: "requests", stroke: "#1f6feb"}]},
  [[1, 2, 3, 4, 5], [3, 1, 4, 1, 5]],
  document.getElementById("chart"),
);
"""

FRAGMENT = '<strong id="loaded">Loaded from the server</strong>'

# What the console must never do: an inline script (refused by the policy), a script that
# throws and a button with no name.
BROKEN = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Broken</title></head>
<body>
  <main><h1>Broken</h1><button type="button"></button></main>
  <script>document.title = "inline ran";</script>
  <script src="/throws.js"></script>
</body>
</html>
"""


class _Handler(SimpleHTTPRequestHandler):
    """Serves /static/ from the console package and everything else from the site's
    directory, each answer with the console's Content-Security-Policy."""

    static: Path

    def translate_path(self, path: str) -> str:
        if path.startswith("/static/"):
            return str(self.static / path.split("?", 1)[0].removeprefix("/static/"))
        return super().translate_path(path)

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    for name, text in {"index.html": INDEX, "chart.js": CHART, "fragment.html": FRAGMENT,
                       "broken.html": BROKEN, "throws.js": 'throw new Error("harness boom");',
                       # the browser asks for it, and a 404 is a console error
                       "favicon.ico": ""}.items():
        (tmp_path / name).write_text(text)
    with as_file(files("keel.console") / "static") as static:
        handler = type("Handler", (_Handler,), {"static": static})
        server = ThreadingHTTPServer(
            ("127.0.0.1", 0), lambda *a: handler(*a, directory=str(tmp_path)))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


def test_vendored_htmx_and_uplot_work_under_a_strict_csp(page: Page, site: str) -> None:
    response = page.goto(site + "/index.html")
    assert response is not None and response.headers["content-security-policy"] == CSP

    canvas = page.locator("#chart canvas")
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 0 and box["height"] > 0
    assert page.evaluate("document.querySelector('#chart canvas').width") > 0

    page.get_by_role("button", name="Load").click()
    expect(page.locator("#swapped #loaded")).to_have_text("Loaded from the server")

    assert axe_violations(page) == []


def test_error_recorder_and_axe_report_what_a_broken_page_does(
    browser: Browser, site: str,
) -> None:
    context = browser.new_context()
    try:
        broken = context.new_page()
        errors = PageErrors().attach(broken)
        with broken.expect_event("pageerror"):
            broken.goto(site + "/broken.html")
        # the refused inline script never ran
        assert broken.title() == "Broken"
        assert [v["id"] for v in axe_violations(broken)] == ["button-name"]
    finally:
        context.close()
    assert any(m.startswith("console error:") and "Content Security Policy" in m
               for m in errors.messages), errors.messages
    assert any(m.startswith("uncaught") and "harness boom" in m for m in errors.messages), errors.messages
