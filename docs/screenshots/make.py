"""Regenerates the screenshots of the console's main pages in this directory, from `keel demo`.

    .venv/bin/python docs/screenshots/make.py [--chromium /usr/bin/chromium]

It loads the demo into a temporary directory (`keel demo --no-serve`), serves it on a free
port, logs in with the admin key the demo keeps, and saves one PNG per page at 1366x900,
the page's full height up to 1800 px. Needs Playwright (the dev extra) and Debian's
chromium; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
KEEL = Path(sys.executable).with_name("keel")
PAGES = (  # file name, path (TRACE: a trace the story points at), what to wait for
    ("overview.png", "/", "Overview"),
    ("traces.png", "/traces?range=30d", "Traces"),
    ("trace.png", "TRACE", "Trace"),
    ("costs.png", "/costs?feature=research-assistant", "Costs"),
    ("prompts.png", "/prompts/support-reply", "support-reply"),
    ("evals.png", "/evals", "Evals"),
    ("reviews.png", "/reviews", "Reviews"),
    ("alerts.png", "/alerts", "Alerts"),
    ("drift.png", "/drift/research-assistant", "Drift of research-assistant"),
    ("governance.png", "/governance", "Governance"),
)


MAX_HEIGHT = 1800  # a long page (the audit log, a trace list) is cut here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"keel demo did not answer at {url} within {timeout_s:g} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default=os.environ.get("KEEL_CHROMIUM",
                                                             "/usr/bin/chromium"))
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keel-shots-") as tmp:
        data = Path(tmp) / "demo"
        loaded = subprocess.run([str(KEEL), "demo", "--no-serve", "--data-dir", str(data)],
                                capture_output=True, text=True, check=True)
        key = re.search(r"sk-keel-\S+", loaded.stdout)
        if key is None:
            raise SystemExit("keel demo printed no admin key:\n" + loaded.stdout)
        port = free_port()
        server = subprocess.Popen([str(KEEL), "demo", "--data-dir", str(data),
                                   "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_up(url)
            shoot(url, key.group(0), args.chromium, args.out)
        finally:
            server.terminate()
            server.wait(timeout=30)


def shoot(url: str, key: str, chromium: str, out: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox"] if os.geteuid() == 0 else [])
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(url + "/login")
        page.get_by_label("Key").fill(key)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(url + "/")
        page.goto(url + "/traces?range=30d&feature=contract-summariser")
        first = page.locator("main table tbody tr a.mono").first
        trace_path = first.get_attribute("href") or "/traces"
        for name, path, heading in PAGES:
            page.goto(url + (trace_path if path == "TRACE" else path))
            page.get_by_role("heading", level=1).filter(has_text=heading).first.wait_for()
            page.wait_for_timeout(300)  # charts drawn
            height = min(MAX_HEIGHT, int(page.evaluate("document.body.scrollHeight")))
            page.screenshot(path=str(out / name), full_page=True,
                            clip={"x": 0, "y": 0, "width": 1366, "height": height})
            print(f"{out / name}")
        browser.close()


if __name__ == "__main__":
    main()
