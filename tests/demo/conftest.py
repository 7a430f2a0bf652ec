"""A demo month loaded once for the tests of this package, and a keel serving it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from keel.demo.home import DemoHome
from keel.demo.load import Loaded, demo_config, load
from keel.demo.story import Timeline
from keel.server.app import create_app
from tests.support.servers import ThreadServer

REQUESTS = 600
SEED = 11


@dataclass
class Month:
    home: DemoHome
    now: float
    loaded: Loaded

    @property
    def timeline(self) -> Timeline:
        return Timeline.ending(self.now)


def load_month(path: Path, *, now: float, requests: int = REQUESTS, seed: int = SEED) -> Month:
    home = DemoHome(path)
    home.claim(seed=seed, requests=requests, now=now)
    loaded = asyncio.run(load(home, requests=requests, seed=seed, now=now))
    home.complete(sent=loaded.requests)
    return Month(home, now, loaded)


@pytest.fixture(scope="session")
def month(tmp_path_factory: pytest.TempPathFactory) -> Month:
    """A month of ``REQUESTS`` requests, ending a moment ago, in a directory of its own."""
    return load_month(tmp_path_factory.mktemp("demo") / "keel-demo", now=time.time() - 60)


@pytest.fixture(scope="session")
def api(month: Month) -> Iterator[httpx.Client]:
    """The admin API of a keel serving the month, with the demo's admin key."""
    server = ThreadServer(create_app(month.home.settings(port=0), demo_config())).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30, headers={
                "authorization": f"Bearer {month.home.admin_key()}"}) as client:
            yield client
    finally:
        server.stop()
