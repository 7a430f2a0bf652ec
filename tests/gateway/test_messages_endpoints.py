"""The rest of Anthropic's surface under ``/v1/messages``: ``count_tokens`` (the upstream's
count for an Anthropic model, keel's estimate otherwise), and keel's own 404/405 there in
Anthropic's error shape (OpenAI's elsewhere)."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest

from keel.text import estimate_messages
from tests.gateway.conftest import Upstreams
from tests.support.keel import Keel

USER: Any = [{"role": "user", "content": "one two three"}]


def _anthropic(k: Keel, key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=k.url, api_key=key or k.admin_key, max_retries=0)


def _error(exc: anthropic.APIStatusError) -> dict[str, Any]:
    body = exc.body
    assert isinstance(body, dict) and body["type"] == "error", body
    assert body["request_id"] == exc.request_id == exc.response.headers["x-request-id"]
    assert set(body["error"]) == {"type", "message"}
    return dict(body["error"])


def test_count_tokens_asks_an_anthropic_upstream(keel_two: Keel, fakes: Upstreams) -> None:
    counted = _anthropic(keel_two).messages.count_tokens(model="claude", system="Be brief.",
                                                         messages=USER)
    assert counted.input_tokens == 2 + 3 + fakes.anthropic.count_extra
    assert counted._request_id
    sent = fakes.anthropic.requests[-1]
    assert sent["path"] == "/v1/messages/count_tokens"
    assert sent["body"]["model"] == "claude-up" and "max_tokens" not in sent["body"]
    assert sent["body"]["system"] == "Be brief."


@pytest.mark.parametrize("model", ["mock", "gpt"])
def test_count_tokens_estimates_for_other_models(keel_two: Keel, fakes: Upstreams,
                                                 model: str) -> None:
    c = _anthropic(keel_two)
    counted = c.messages.count_tokens(model=model, system="Be brief.", messages=USER)
    assert counted.input_tokens == estimate_messages(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "one two three"}])
    tool: Any = {"name": "lookup", "description": "Look a word up in the dictionary",
                 "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}}}
    with_tools = c.messages.count_tokens(model=model, system="Be brief.", messages=USER,
                                         tools=[tool])
    assert with_tools.input_tokens > counted.input_tokens
    assert not fakes.openai.requests, "an estimate calls no upstream"


def test_count_tokens_refuses_what_messages_refuses(keel_two: Keel, fakes: Upstreams) -> None:
    c = _anthropic(keel_two)
    with pytest.raises(anthropic.BadRequestError) as bad:
        c.post("/v1/messages/count_tokens", cast_to=object, body={"model": "mock"})
    assert _error(bad.value)["type"] == "invalid_request_error"
    assert "messages" in bad.value.message
    with pytest.raises(anthropic.NotFoundError) as missing:
        c.messages.count_tokens(model="nope", messages=USER)
    assert _error(missing.value)["type"] == "not_found_error"
    with pytest.raises(anthropic.AuthenticationError):
        _anthropic(keel_two, "sk-wrong").messages.count_tokens(model="mock", messages=USER)
    limited = keel_two.create_key(team="cx", models=["mock"])
    with pytest.raises(anthropic.PermissionDeniedError):
        _anthropic(keel_two, limited).messages.count_tokens(model="claude", messages=USER)


def test_count_tokens_reports_an_upstream_failure_in_anthropics_shape(
        keel_two: Keel, fakes: Upstreams) -> None:
    fakes.anthropic.mode, fakes.anthropic.status = "status", 429
    fakes.anthropic.error_type, fakes.anthropic.error_message = "rate_limit_error", "slow down"
    with pytest.raises(anthropic.RateLimitError) as info:
        _anthropic(keel_two).messages.count_tokens(model="claude", messages=USER)
    assert "slow down" in _error(info.value)["message"]


def test_unknown_paths_under_messages_are_anthropic_not_found_errors(keel_two: Keel) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        _anthropic(keel_two).messages.batches.retrieve("msgbatch_01")
    err = _error(info.value)
    assert err["type"] == "not_found_error"
    assert "/v1/messages/batches/msgbatch_01" in err["message"]
    assert info.value.response.headers["request-id"] == info.value.request_id


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_a_wrong_method_on_messages_is_an_anthropic_error(keel_two: Keel, path: str) -> None:
    r = httpx.get(keel_two.url + path)
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "method not allowed: GET" in body["error"]["message"]
    assert body["request_id"] == r.headers["request-id"] == r.headers["x-request-id"]


@pytest.mark.parametrize("path", ["/v1/messagesx", "/v1/nothing"])
def test_elsewhere_keels_own_errors_keep_the_openai_shape(keel_two: Keel, path: str) -> None:
    r = httpx.get(keel_two.url + path)
    assert r.status_code == 404
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert "request-id" not in r.headers and r.headers["x-request-id"].startswith("req_")
