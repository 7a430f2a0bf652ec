"""Shared gateway fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import ThreadServer, serve


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[tuple[FakeOpenAI, ThreadServer]]:
    """A fake OpenAI upstream on loopback, one per test module (tests reset its state)."""
    f = FakeOpenAI()
    with serve(f.app) as server:
        yield f, server
