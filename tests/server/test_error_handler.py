"""A ``KeelError`` raised anywhere below a route, with no catch of its own on the way, is
answered by the app's one handler: the error's status, its headers (``Retry-After``), its
body in OpenAI's format, and the request id header like every other answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from keel.server.trace_lookup import not_stored_yet
from tests.support.keel import Keel, running_keel

USER = [{"role": "user", "content": "hi"}]
WAIT_S = 0.2


@pytest.fixture
def stalled(tmp_path: Path) -> Iterator[Keel]:
    """A keel whose writer keeps its traces in memory for the length of a test."""
    with running_keel(tmp_path, trace_flush_interval_s=600.0, feedback_wait_s=WAIT_S) as k:
        yield k


def chat_trace(k: Keel, key: str) -> str:
    r = httpx.post(f"{k.url}/v1/chat/completions", json={"model": "mock", "messages": USER},
                   headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return r.headers["x-keel-trace-id"]


def test_an_error_raised_deep_below_a_route_is_answered_with_its_status_headers_and_request_id(
        stalled: Keel) -> None:
    key = stalled.create_key(team="cx", feature="support")
    trace_id = chat_trace(stalled, key)
    # POST /api/outcomes waits in trace_lookup, which raises; the route catches nothing
    r = httpx.post(f"{stalled.url}/api/outcomes",
                   json={"name": "ticket_resolved", "trace_ids": [trace_id]},
                   headers={"authorization": f"Bearer {key}", "x-request-id": "req-abc-123"})
    expected = not_stored_yet([trace_id], WAIT_S)
    assert r.status_code == expected.status == 503
    assert r.content == orjson.dumps(expected.to_openai())
    assert r.json()["error"]["code"] == "trace_not_stored_yet"
    assert r.headers["content-type"] == "application/json"
    assert r.headers["retry-after"] == "5"
    assert r.headers["x-request-id"] == "req-abc-123"


def test_a_not_found_from_a_service_gets_a_request_id_keel_made_when_the_client_sent_none(
        stalled: Keel) -> None:
    r = httpx.get(f"{stalled.url}/api/prompts/nothing-here@1", headers=stalled.admin_headers())
    assert r.status_code == 404, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "not_found_error" and "nothing-here" in error["message"]
    assert r.headers["x-request-id"].startswith("req_")
    assert "retry-after" not in r.headers


def test_a_refused_key_on_metrics_is_still_worded_for_the_scraper(stalled: Keel) -> None:
    r = httpx.get(f"{stalled.url}/metrics", headers={"x-request-id": "req-scrape-1"})
    assert r.status_code == 401
    error = r.json()["error"]
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert error["message"].startswith("no API key: GET /metrics needs the master key")
    assert r.headers["x-request-id"] == "req-scrape-1"

