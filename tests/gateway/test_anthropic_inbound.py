"""Anthropic clients -> keel: ``POST /v1/messages`` driven by the official ``anthropic`` SDK.

One keel serves three chat models: the built-in ``mock``, ``gpt`` on a fake OpenAI
upstream and ``claude`` on a fake Anthropic upstream, so the same client code is checked
against every translation path, and the upstream side is checked on the wire.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.support.fake_anthropic import API_KEY as ANTHROPIC_KEY
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_openai import FakeOpenAI
from tests.support.keel import Keel, running_keel
from tests.support.servers import serve

WEATHER: Any = {"name": "get_weather", "description": "Current weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}
USER: Any = [{"role": "user", "content": "Hello there, how are you?"}]


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    with serve(fake.app) as server:
        fake.url = server.url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic()
    with serve(fake.app) as server:
        fake.url = server.url
        yield fake


@pytest.fixture(scope="module")
def keel(fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keel]:
    config = {
        "providers": [
            {"name": "mock", "kind": "mock"},
            {"name": "oai", "kind": "openai", "api_key": "sk-upstream",
             "base_url": fake_openai.url + "/v1"},  # type: ignore[attr-defined]
            {"name": "ant", "kind": "anthropic", "api_key": ANTHROPIC_KEY,
             "base_url": fake_anthropic.url},
        ],
        "models": [
            {"name": "mock", "provider": "mock",
             "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
            {"name": "gpt", "provider": "oai", "upstream": "gpt-4o"},
            {"name": "claude", "provider": "ant", "upstream": "claude-sonnet-4"},
        ],
    }
    with running_keel(tmp_path_factory.mktemp("keel"), config) as k:
        yield k


@pytest.fixture(autouse=True)
def _reset(fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic) -> None:
    fake_openai.mode, fake_openai.retry_after = "ok", None
    fake_openai.requests.clear()
    fake_anthropic.mode = "ok"
    fake_anthropic.requests.clear()


@pytest.fixture
def client(keel: Keel) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=keel.url, api_key=keel.admin_key, max_retries=0)


def stored_trace(keel: Keel, trace_id: str) -> dict[str, Any]:
    keel.flush()
    resp = httpx.get(f"{keel.url}/api/traces/{trace_id}", headers=keel.admin_headers())
    assert resp.status_code == 200
    return resp.json()  # type: ignore[no-any-return]


# --- the mock model -----------------------------------------------------------------------


def test_mock_answer_equals_the_openai_endpoints_answer(client: anthropic.Anthropic,
                                                        keel: Keel) -> None:
    turns: Any = [{"role": "user", "content": "Plan a trip to Lisbon"},
                  {"role": "assistant", "content": "Sure, when?"},
                  {"role": "user", "content": "In spring, with museums"}]
    msg = client.messages.create(model="mock", max_tokens=200, system="You plan trips.",
                                 messages=turns)
    oa = openai.OpenAI(base_url=keel.base_url, api_key=keel.admin_key, max_retries=0)
    ref = oa.chat.completions.create(model="mock", max_tokens=200, messages=[
        {"role": "system", "content": "You plan trips."}, *turns])
    assert msg.type == "message" and msg.role == "assistant" and msg.model == "mock"
    assert msg.id.startswith("msg_")
    assert msg.stop_reason == "end_turn"
    assert len(msg.content) == 1 and msg.content[0].type == "text"
    assert msg.content[0].text == ref.choices[0].message.content
    assert "spring" in msg.content[0].text and "museums" in msg.content[0].text  # last turn
    assert ref.usage is not None
    assert msg.usage.input_tokens == ref.usage.prompt_tokens
    assert msg.usage.output_tokens == ref.usage.completion_tokens > 0
    assert msg.usage.cache_read_input_tokens == 0


def test_mock_streaming_matches_non_streaming(client: anthropic.Anthropic) -> None:
    whole = client.messages.create(model="mock", max_tokens=200, messages=USER)
    with client.messages.stream(model="mock", max_tokens=200, messages=USER) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert events.count("content_block_start") == events.count("content_block_stop") == 1
    assert final.content[0].type == "text" and whole.content[0].type == "text"
    assert final.content[0].text == whole.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens > 0


def test_text_stream_yields_the_text_piece_by_piece(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="mock", max_tokens=200, messages=USER) as stream:
        pieces = list(stream.text_stream)
    assert len(pieces) > 3
    whole = client.messages.create(model="mock", max_tokens=200, messages=USER)
    assert whole.content[0].type == "text"
    assert "".join(pieces) == whole.content[0].text


def test_mock_tool_use_round_trip(client: anthropic.Anthropic) -> None:
    asked: Any = [{"role": "user", "content": "Call get_weather for Paris"}]
    first = client.messages.create(model="mock", max_tokens=200, tools=[WEATHER],
                                   messages=asked)
    assert first.stop_reason == "tool_use"
    use = first.content[-1]
    assert use.type == "tool_use" and use.name == "get_weather"
    assert isinstance(use.input, dict) and isinstance(use.input["city"], str)
    history: Any = [*asked,
                    {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                  "content": "18C and sunny"}]}]
    second = client.messages.create(model="mock", max_tokens=200, tools=[WEATHER],
                                    messages=history)
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text" and second.content[0].text


def test_output_config_json_schema_yields_json_text(client: anthropic.Anthropic,
                                                    fake_openai: FakeOpenAI) -> None:
    schema: Any = {"type": "object", "properties": {"city": {"type": "string"},
                                                    "days": {"type": "integer"}}}
    msg = client.messages.create(model="mock", max_tokens=200, messages=USER,
                                 output_config={"format": {"type": "json_schema",
                                                           "schema": schema}})
    assert msg.content[0].type == "text"
    data = json.loads(msg.content[0].text)
    assert isinstance(data["city"], str) and isinstance(data["days"], int)
    client.messages.create(model="gpt", max_tokens=20, messages=USER,
                           output_config={"format": {"type": "json_schema", "schema": schema},
                                          "effort": "low"})
    assert fake_openai.requests[-1]["body"]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def test_mock_streaming_tool_use_builds_the_input(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="mock", max_tokens=200, tools=[WEATHER],
                                tool_choice={"type": "any"},
                                messages=[{"role": "user", "content": "weather?"}]) as stream:
        deltas = [e for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert deltas and all(d.delta.type == "input_json_delta" for d in deltas)
    assert final.stop_reason == "tool_use"
    use = final.content[-1]
    assert use.type == "tool_use" and use.name == "get_weather"
    assert isinstance(use.input, dict) and isinstance(use.input["city"], str)


# --- an OpenAI upstream -------------------------------------------------------------------


def test_openai_upstream_receives_translated_request(client: anthropic.Anthropic,
                                                     fake_openai: FakeOpenAI) -> None:
    msg = client.messages.create(
        model="gpt", max_tokens=55, extra_body={"temperature": 0.3, "top_p": 0.8, "top_k": 5},
        stop_sequences=["STOP"], system=[{"type": "text", "text": "Be brief."}],
        metadata={"user_id": "u-7"}, tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        messages=USER)
    body = fake_openai.requests[-1]["body"]
    assert body["model"] == "gpt-4o"
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, *USER]
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (55, 0.3, 0.8)
    assert body["stop"] == ["STOP"]
    assert body["user"] == "u-7"
    assert "top_k" not in body and "metadata" not in body
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city",
        "parameters": WEATHER["input_schema"]}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert msg.stop_reason == "tool_use"
    assert msg.content[0].type == "tool_use"
    assert (msg.content[0].id, msg.content[0].input) == ("call_1", {"city": "Paris"})
    # the fake reports 11 prompt tokens of which 4 cached
    assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens) == (7, 4)
    assert msg.usage.output_tokens == 7


def test_tool_results_and_images_become_openai_messages(client: anthropic.Anthropic,
                                                        fake_openai: FakeOpenAI) -> None:
    msg = client.messages.create(model="gpt", max_tokens=50, messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_9", "name": "get_weather",
             "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_9",
             "content": [{"type": "text", "text": "18C"}]},
            {"type": "text", "text": "And this photo?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                         "data": "/9j/4AAQ"}}]}])
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "Hello from the fake upstream."
    assert msg.stop_reason == "end_turn"
    assert fake_openai.requests[-1]["body"]["messages"][1:] == [
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_9", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": "18C"},
        {"role": "user", "content": [
            {"type": "text", "text": "And this photo?"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]}]


def test_openai_upstream_streaming(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="gpt", max_tokens=50, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the fake upstream."
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens,
            final.usage.output_tokens) == (7, 4, 7)


# --- an Anthropic upstream: Anthropic in, Anthropic out -----------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_to_anthropic_keeps_cache_usage(client: anthropic.Anthropic,
                                                  fake_anthropic: FakeAnthropic,
                                                  stream: bool) -> None:
    kwargs: Any = {"model": "claude", "max_tokens": 64, "system": "Be kind.", "messages": USER}
    if stream:
        with client.messages.stream(**kwargs) as s:
            msg = s.get_final_message()
    else:
        msg = client.messages.create(**kwargs)
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "Bonjour from the fake Claude."
    assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens,
            msg.usage.cache_creation_input_tokens, msg.usage.output_tokens) == (20, 100, 30, 9)
    body = fake_anthropic.requests[-1]["body"]
    assert body["system"] == "Be kind." and body["max_tokens"] == 64


def test_upstream_overloaded_is_an_anthropic_overloaded_error(
        client: anthropic.Anthropic, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.mode, fake_anthropic.status = "status", 529
    with pytest.raises(anthropic.OverloadedError) as info:
        client.messages.create(model="claude", max_tokens=10, messages=USER)
    assert info.value.status_code == 529
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == "overloaded_error"


# --- errors -------------------------------------------------------------------------------


def _error_of(exc: anthropic.APIStatusError) -> dict[str, Any]:
    body = exc.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert exc.response.headers["request-id"] == body["request_id"]
    return body["error"]  # type: ignore[no-any-return]


def test_missing_max_tokens_is_an_invalid_request_error(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.post("/v1/messages", cast_to=anthropic.types.Message,
                    body={"model": "mock", "messages": USER})
    err = _error_of(info.value)
    assert err == {"type": "invalid_request_error", "message": "max_tokens: is required"}


@pytest.mark.parametrize(("body", "field"), [
    ({"model": "mock", "max_tokens": 5, "messages": "hi"}, "messages"),
    ({"model": "mock", "max_tokens": 5, "messages": []}, "messages"),
    ({"model": "mock", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
     "messages.0.role"),
    ({"model": "mock", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "video"}]}]}, "messages.0.content.0.type"),
    ({"model": "mock", "max_tokens": 0, "messages": USER}, "max_tokens"),
    ({"model": "mock", "max_tokens": 5, "temperature": 1.5, "messages": USER}, "temperature"),
    ({"max_tokens": 5, "messages": USER}, "model"),
])
def test_malformed_body_names_the_field(keel: Keel, body: dict[str, Any], field: str) -> None:
    resp = httpx.post(f"{keel.url}/v1/messages", json=body,
                      headers={"x-api-key": keel.admin_key, "anthropic-version": "2023-06-01"})
    assert resp.status_code == 400
    data = resp.json()
    assert data["type"] == "error"
    assert data["error"]["type"] == "invalid_request_error"
    assert data["error"]["message"].startswith(f"{field}: ")
    assert resp.headers["x-keel-trace-id"]


def test_bad_key_is_an_authentication_error(keel: Keel) -> None:
    bad = anthropic.Anthropic(base_url=keel.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as info:
        bad.messages.create(model="mock", max_tokens=10, messages=USER)
    assert info.value.status_code == 401
    assert _error_of(info.value)["type"] == "authentication_error"


def test_x_api_key_header_authenticates(keel: Keel) -> None:
    resp = httpx.post(f"{keel.url}/v1/messages",
                      json={"model": "mock", "max_tokens": 10, "messages": USER},
                      headers={"x-api-key": keel.admin_key})
    assert resp.status_code == 200
    assert resp.json()["type"] == "message"


def test_unknown_model_is_a_not_found_error(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="no-such-model", max_tokens=10, messages=USER)
    err = _error_of(info.value)
    assert err["type"] == "not_found_error" and "no-such-model" in err["message"]


def test_model_outside_the_keys_list_is_a_permission_error(keel: Keel) -> None:
    key = keel.create_key(team="t1", models=["gpt"])
    limited = anthropic.Anthropic(base_url=keel.url, api_key=key, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        limited.messages.create(model="mock", max_tokens=10, messages=USER)
    assert _error_of(info.value)["type"] == "permission_error"


def test_upstream_rate_limit_is_a_rate_limit_error_with_retry_after(
        client: anthropic.Anthropic, fake_openai: FakeOpenAI) -> None:
    fake_openai.mode, fake_openai.status, fake_openai.retry_after = "status", 429, "3"
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="gpt", max_tokens=10, messages=USER)
    assert _error_of(info.value)["type"] == "rate_limit_error"
    assert info.value.response.headers["retry-after"] == "3"


def test_upstream_server_error_is_an_api_error(client: anthropic.Anthropic,
                                               fake_openai: FakeOpenAI) -> None:
    fake_openai.mode, fake_openai.status = "status", 500
    with pytest.raises(anthropic.InternalServerError) as info:
        client.messages.create(model="gpt", max_tokens=10, messages=USER)
    assert info.value.status_code == 502
    assert _error_of(info.value)["type"] == "api_error"


def test_mid_stream_failure_is_an_error_event(client: anthropic.Anthropic,
                                              fake_openai: FakeOpenAI, keel: Keel) -> None:
    fake_openai.mode = "break_stream"
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info, \
            client.messages.stream(model="gpt", max_tokens=10, messages=USER) as stream:
        trace_id = stream.response.headers["x-keel-trace-id"]
        received.extend(stream.text_stream)
    assert "".join(received) == "Hello from"
    assert isinstance(info.value.body, dict)
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == "api_error"
    assert "upstream overloaded" in info.value.body["error"]["message"]
    trace = stored_trace(keel, trace_id)
    assert trace["endpoint"] == "messages" and trace["stream"]
    assert trace["error_type"] == "upstream_stream_error"


# --- traces -------------------------------------------------------------------------------


def test_request_is_traced_as_messages_in_openai_form(client: anthropic.Anthropic,
                                                      keel: Keel) -> None:
    raw = client.messages.with_raw_response.create(
        model="mock", max_tokens=100, system="Sys.", messages=USER,
        metadata={"user_id": "u-1"}, extra_headers={"x-keel-feature": "support"})
    msg = raw.parse()
    trace = stored_trace(keel, raw.headers["x-keel-trace-id"])
    assert trace["endpoint"] == "messages"
    assert trace["status"] == 200 and not trace["stream"]
    assert (trace["model_requested"], trace["provider"]) == ("mock", "mock")
    assert (trace["feature"], trace["user"], trace["team"]) == ("support", "u-1", "admin")
    assert trace["input_tokens"] == msg.usage.input_tokens
    assert trace["output_tokens"] == msg.usage.output_tokens
    expected = (msg.usage.input_tokens * 1.0 + msg.usage.output_tokens * 2.0) / 1_000_000
    assert trace["cost_usd"] == pytest.approx(expected)
    assert trace["request"]["messages"][0] == {"role": "system", "content": "Sys."}
    assert msg.content[0].type == "text"
    assert trace["response"]["choices"][0]["message"]["content"] == msg.content[0].text


def test_streamed_request_is_traced_with_usage(client: anthropic.Anthropic, keel: Keel) -> None:
    with client.messages.stream(model="mock", max_tokens=100, messages=USER) as stream:
        trace_id = stream.response.headers["x-keel-trace-id"]
        final = stream.get_final_message()
    trace = stored_trace(keel, trace_id)
    assert trace["endpoint"] == "messages" and trace["stream"] and trace["status"] == 200
    assert trace["output_tokens"] == final.usage.output_tokens > 0
    assert trace["ttft_ms"] is not None


def test_rejected_request_is_traced_with_its_error(keel: Keel) -> None:
    resp = httpx.post(f"{keel.url}/v1/messages", json={"model": "mock", "messages": USER},
                      headers={"x-api-key": keel.admin_key})
    trace = stored_trace(keel, resp.headers["x-keel-trace-id"])
    assert trace["endpoint"] == "messages"
    assert (trace["status"], trace["error_type"]) == (400, "invalid_request_error")
    assert "max_tokens" in trace["error_message"]
