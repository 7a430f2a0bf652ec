"""What a provider says is wrong reaches the client: its error type, code and param, on
the OpenAI and the Anthropic endpoints, with keel's message naming who refused. Traces
and metrics keep keel's own classification."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.gateway.conftest import Upstreams, stored_trace
from tests.support.keel import Keel

USER: Any = [{"role": "user", "content": "Summarise this very long document."}]
TOO_LONG = ("This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 130001 tokens. Please reduce the length of the messages.")


def _openai(k: Keel) -> openai.OpenAI:
    return openai.OpenAI(base_url=k.base_url, api_key=k.admin_key, max_retries=0)


def _anthropic(k: Keel) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=k.url, api_key=k.admin_key, max_retries=0)


def _context_too_long(fakes: Upstreams) -> None:
    fakes.openai.mode, fakes.openai.status = "status", 400
    fakes.openai.error_body = {"error": {"message": TOO_LONG, "type": "invalid_request_error",
                                         "param": "messages", "code": "context_length_exceeded"}}


@pytest.mark.parametrize("stream", [False, True])
def test_openai_upstream_code_param_and_type_reach_the_openai_sdk(
        keel_two: Keel, fakes: Upstreams, stream: bool) -> None:
    _context_too_long(fakes)
    with pytest.raises(openai.BadRequestError) as info:
        _openai(keel_two).chat.completions.create(model="gpt", messages=USER, stream=stream)
    err = info.value
    assert (err.status_code, err.type, err.code, err.param) == (
        400, "invalid_request_error", "context_length_exceeded", "messages")
    assert "provider 'oai' (model 'gpt-4o-up') rejected the request (400)" in err.message
    assert "maximum context length is 128000 tokens" in err.message
    trace = stored_trace(keel_two, err.response.headers["x-keel-trace-id"])
    assert (trace["status"], trace["error_type"]) == (400, "upstream_rejected")


def test_provider_codes_never_become_metric_labels(keel_two: Keel, fakes: Upstreams) -> None:
    _context_too_long(fakes)
    r = httpx.post(f"{keel_two.base_url}/chat/completions", headers=keel_two.admin_headers(),
                   json={"model": "gpt", "messages": USER})
    assert r.json()["error"]["code"] == "context_length_exceeded"
    text = httpx.get(f"{keel_two.url}/metrics", headers=keel_two.admin_headers()).text
    assert "upstream_rejected" in text
    assert "context_length_exceeded" not in text


def test_an_unusual_upstream_4xx_keeps_its_code_and_the_usual_ones_their_status(
        keel_two: Keel, fakes: Upstreams) -> None:
    fakes.openai.mode, fakes.openai.status = "status", 422
    fakes.openai.error_body = {"error": {"message": "temperature: must be <= 2",
                                         "type": "invalid_request_error",
                                         "param": "temperature", "code": "invalid_value"}}
    with pytest.raises(openai.UnprocessableEntityError) as info:
        _openai(keel_two).chat.completions.create(model="gpt", messages=USER)
    assert (info.value.code, info.value.param) == ("invalid_value", "temperature")
    fakes.openai.status = 418
    with pytest.raises(openai.BadRequestError) as bad:
        _openai(keel_two).chat.completions.create(model="gpt", messages=USER)
    assert bad.value.code == "invalid_value" and "(418)" in bad.value.message


@pytest.mark.parametrize("code", [400, ["x"], "two\nlines", "x" * 500])
def test_a_code_that_is_not_a_short_string_leaves_keels_own(
        keel_two: Keel, fakes: Upstreams, code: Any) -> None:
    fakes.openai.mode, fakes.openai.status = "status", 400
    fakes.openai.error_body = {"error": {"message": "bad", "code": code, "param": code}}
    r = httpx.post(f"{keel_two.base_url}/chat/completions", headers=keel_two.admin_headers(),
                   json={"model": "gpt", "messages": USER})
    err = r.json()["error"]
    assert (r.status_code, err["code"], err["param"]) == (400, "upstream_rejected", None)


def test_upstream_credentials_refused_are_not_the_clients_invalid_api_key(
        keel_two: Keel, fakes: Upstreams) -> None:
    fakes.openai.mode, fakes.openai.status = "status", 401
    fakes.openai.error_body = {"error": {"message": "Incorrect API key provided",
                                         "type": "invalid_request_error",
                                         "code": "invalid_api_key"}}
    with pytest.raises(openai.APIStatusError) as info:
        _openai(keel_two).chat.completions.create(model="gpt", messages=USER)
    assert (info.value.status_code, info.value.code) == (502, "upstream_auth_failed")


def test_anthropic_upstream_error_type_reaches_the_openai_sdk(
        keel_two: Keel, fakes: Upstreams) -> None:
    fakes.anthropic.mode, fakes.anthropic.status = "status", 400
    fakes.anthropic.error_type = "invalid_request_error"
    fakes.anthropic.error_message = "prompt is too long: 210000 tokens > 200000 maximum"
    with pytest.raises(openai.BadRequestError) as info:
        _openai(keel_two).chat.completions.create(model="claude", messages=USER)
    err = info.value
    assert (err.type, err.code) == ("invalid_request_error", "upstream_rejected")
    assert "provider 'ant' (model 'claude-up') rejected the request (400)" in err.message
    assert "prompt is too long" in err.message


def test_anthropic_upstream_error_type_reaches_the_anthropic_sdk(
        keel_two: Keel, fakes: Upstreams) -> None:
    fakes.anthropic.mode, fakes.anthropic.status = "status", 413
    fakes.anthropic.error_type = "request_too_large"
    fakes.anthropic.error_message = "Request exceeds the maximum allowed number of bytes."
    with pytest.raises(anthropic.APIStatusError) as info:
        _anthropic(keel_two).messages.create(model="claude", max_tokens=10, messages=USER)
    assert info.value.status_code == 413
    body = info.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "request_too_large"
    assert "maximum allowed number of bytes" in body["error"]["message"]


def test_openai_upstream_rejection_is_an_anthropic_error_on_messages(
        keel_two: Keel, fakes: Upstreams) -> None:
    _context_too_long(fakes)
    with pytest.raises(anthropic.BadRequestError) as info:
        _anthropic(keel_two).messages.create(model="gpt", max_tokens=10, messages=USER)
    body = info.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "invalid_request_error"
    assert "maximum context length" in body["error"]["message"]


def test_an_error_mid_stream_carries_the_providers_code(
        keel_two: Keel, fakes: Upstreams) -> None:
    fakes.openai.mode = "break_stream"
    fakes.openai.stream_error = {"message": "The server had an error", "type": "server_error",
                                 "code": "server_overloaded"}
    with pytest.raises(openai.APIError) as info:
        for _ in _openai(keel_two).chat.completions.create(model="gpt", messages=USER,
                                                           stream=True):
            pass
    assert info.value.code == "server_overloaded"
    assert "The server had an error" in info.value.message


@pytest.mark.parametrize(("error", "code"), [
    # Azure OpenAI: a numeric status beside OpenAI's fields
    ({"message": "filtered", "code": "content_filter", "param": "prompt", "status": 400},
     "content_filter"),
    # a server that says status "error": not Google's status vocabulary
    ({"message": "nope", "type": "invalid_request_error", "status": "error",
      "code": "invalid_value"}, "invalid_value"),
    # Google's shape on an OpenAI-compatible endpoint (Gemini's, or a proxy of it)
    ({"message": "bad", "code": 400, "status": "INVALID_ARGUMENT"}, "INVALID_ARGUMENT"),
])
def test_error_bodies_of_every_common_shape_keep_their_code(
        keel_two: Keel, fakes: Upstreams, error: dict[str, Any], code: str) -> None:
    fakes.openai.mode, fakes.openai.status = "status", 400
    fakes.openai.error_body = {"error": error}
    r = httpx.post(f"{keel_two.base_url}/chat/completions", headers=keel_two.admin_headers(),
                   json={"model": "gpt", "messages": USER})
    err = r.json()["error"]
    assert (r.status_code, err["code"], err["type"]) == (400, code, "invalid_request_error")
