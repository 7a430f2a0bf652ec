"""Shared gateway fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.fake_anthropic import API_KEY as ANTHROPIC_KEY
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_openai import FakeOpenAI
from tests.support.keel import Keel, running_keel
from tests.support.servers import ThreadServer, serve


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[tuple[FakeOpenAI, ThreadServer]]:
    """A fake OpenAI upstream on loopback, one per test module (tests reset its state)."""
    f = FakeOpenAI()
    with serve(f.app) as server:
        yield f, server


@dataclass
class Upstreams:
    """A fake OpenAI and a fake Anthropic upstream, served on loopback."""

    openai: FakeOpenAI
    openai_url: str
    anthropic: FakeAnthropic

    def reset(self) -> None:
        o, a = self.openai, self.anthropic
        o.mode, o.status, o.retry_after, o.stop_reason = "ok", 500, None, None
        o.error_body = {"error": {"message": "boom", "type": "server_error"}}
        o.stream_error = {"message": "upstream overloaded", "type": "server_error"}
        o.requests.clear()
        a.mode, a.status, a.retry_after = "ok", 529, None
        a.error_type, a.error_message = "overloaded_error", "Overloaded"
        a.stop_reason, a.stop_sequence = "end_turn", None
        a.requests.clear()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    o, a = FakeOpenAI(), FakeAnthropic()
    with serve(o.app) as os_, serve(a.app) as as_:
        a.url = as_.url
        yield Upstreams(o, os_.url, a)


@pytest.fixture(scope="module")
def keel_two(upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keel]:
    """keel serving ``mock``, ``gpt`` (on the fake OpenAI upstream, as ``gpt-4o-up``) and
    ``claude`` (on the fake Anthropic upstream, as ``claude-up``)."""
    config = {
        "providers": [
            {"name": "mock", "kind": "mock"},
            {"name": "oai", "kind": "openai", "api_key": "sk-upstream-secret-0123456789",
             "base_url": upstreams.openai_url + "/v1"},
            {"name": "ant", "kind": "anthropic", "api_key": ANTHROPIC_KEY,
             "base_url": upstreams.anthropic.url},
        ],
        "models": [
            {"name": "mock", "provider": "mock"},
            {"name": "gpt", "provider": "oai", "upstream": "gpt-4o-up"},
            {"name": "claude", "provider": "ant", "upstream": "claude-up"},
        ],
    }
    with running_keel(tmp_path_factory.mktemp("keel"), config) as k:
        yield k


@pytest.fixture
def fakes(upstreams: Upstreams) -> Upstreams:
    upstreams.reset()
    return upstreams


def stored_trace(k: Keel, trace_id: str) -> dict[str, Any]:
    k.flush()
    r = httpx.get(f"{k.url}/api/traces/{trace_id}", headers=k.admin_headers())
    assert r.status_code == 200, r.text
    return dict(r.json())
