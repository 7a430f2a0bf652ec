"""keel -> Anthropic: the ``anthropic`` provider, driven by the official OpenAI SDK.

keel and a fake Anthropic upstream run as real servers on loopback; each test checks
both what the OpenAI client gets back and what the upstream received on the wire.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.support.fake_anthropic import API_KEY, FakeAnthropic
from tests.support.keel import Keel, running_keel
from tests.support.servers import serve

WEATHER_TOOL: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
PRICE: Any = {"input_per_mtok": 3.0, "output_per_mtok": 15.0, "cached_input_per_mtok": 0.3,
         "cache_write_per_mtok": 3.75}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    upstream = FakeAnthropic()
    with serve(upstream.app) as server:
        upstream.url = server.url
        yield upstream


@pytest.fixture(scope="module")
def keel(fake: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keel]:
    config = {
        "providers": [{"name": "claude-api", "kind": "anthropic", "api_key": API_KEY,
                       "base_url": fake.url,
                       "headers": {"anthropic-beta": "prompt-caching-2024-07-31"}}],
        "models": [{"name": "claude", "provider": "claude-api", "upstream": "claude-sonnet-4",
                    "price": PRICE}],
    }
    with running_keel(tmp_path_factory.mktemp("keel"), config) as k:
        yield k


@pytest.fixture(autouse=True)
def _reset(fake: FakeAnthropic) -> None:
    fresh = FakeAnthropic()
    for name in ("mode", "status", "error_type", "error_message", "retry_after", "text",
                 "stop_reason", "stop_sequence", "usage", "tool_input"):
        setattr(fake, name, getattr(fresh, name))
    fake.requests.clear()


@pytest.fixture
def client(keel: Keel) -> openai.OpenAI:
    return openai.OpenAI(base_url=keel.base_url, api_key=keel.admin_key, max_retries=0)


def sent(fake: FakeAnthropic) -> dict[str, Any]:
    assert len(fake.requests) == 1
    return fake.requests[0]["body"]  # type: ignore[no-any-return]


# --- request translation ------------------------------------------------------------------


def test_text_answer_and_request_wire_format(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    out = client.chat.completions.create(model="claude", messages=[
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello in French."}])
    assert out.choices[0].message.content == "Bonjour from the fake Claude."
    assert out.choices[0].finish_reason == "stop"
    assert out.model == "claude-sonnet-4-20250101"
    assert out.id == "msg_01FAKE"
    req = fake.requests[0]
    assert req["headers"]["x-api-key"] == API_KEY
    assert req["headers"]["anthropic-version"] == "2023-06-01"
    assert req["headers"]["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert req["body"] == {"model": "claude-sonnet-4", "max_tokens": 4096,
                           "system": "You are terse.",
                           "messages": [{"role": "user", "content": [
                               {"type": "text", "text": "Say hello in French."}]}]}


def test_multi_turn_merges_system_and_developer_and_keeps_turn_order(
        client: openai.OpenAI, fake: FakeAnthropic) -> None:
    client.chat.completions.create(model="claude", messages=[
        {"role": "system", "content": "Rule one."},
        {"role": "developer", "content": [{"type": "text", "text": "Rule two."}]},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "First part."},
        {"role": "user", "content": "Second part."}])
    body = sent(fake)
    assert body["system"] == "Rule one.\n\nRule two."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello! How can I help?"}]},
        {"role": "user", "content": [{"type": "text", "text": "First part."},
                                     {"type": "text", "text": "Second part."}]}]


def test_sampling_parameters_stop_user_and_images_are_translated(
        client: openai.OpenAI, fake: FakeAnthropic) -> None:
    client.chat.completions.create(
        model="claude", max_completion_tokens=321, temperature=1.5, top_p=0.9, stop="END",
        user="user-42", seed=7, presence_penalty=0.5,
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is in these?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}])
    body = sent(fake)
    assert body["max_tokens"] == 321
    assert body["temperature"] == 1.0  # clamped to Anthropic's range
    assert body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "user-42"}
    assert "seed" not in body and "presence_penalty" not in body
    assert body["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", {"type": "auto"}),
    ("required", {"type": "any"}),
    ("none", {"type": "none"}),
    ({"type": "function", "function": {"name": "get_weather"}},
     {"type": "tool", "name": "get_weather"}),
])
def test_tool_choice_maps_to_anthropic(client: openai.OpenAI, fake: FakeAnthropic,
                                       choice: Any, expected: dict[str, str]) -> None:
    client.chat.completions.create(model="claude", tools=[WEATHER_TOOL],
                                   tool_choice=choice,
                                   messages=[{"role": "user", "content": "Weather?"}])
    body = sent(fake)
    assert body["tool_choice"] == expected
    assert body["tools"] == [{"name": "get_weather", "description": "Current weather for a city",
                              "input_schema": WEATHER_TOOL["function"]["parameters"]}]


def test_n_above_one_is_refused_without_calling_upstream(
        client: openai.OpenAI, fake: FakeAnthropic) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude", n=2,
                                       messages=[{"role": "user", "content": "Hi"}])
    assert info.value.status_code == 400
    assert info.value.param == "n"
    assert fake.requests == []


# --- tools --------------------------------------------------------------------------------


def test_tool_use_round_trip(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    first = client.chat.completions.create(model="claude", messages=messages,
                                           tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me look that up."
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert (call.id, call.function.name) == ("toolu_01A", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}

    messages += [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_01A", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "toolu_01B", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_01A", "content": "18C, sunny"},
        {"role": "tool", "tool_call_id": "toolu_01B", "content": "24C, clear"}]
    second = client.chat.completions.create(model="claude", messages=messages,
                                            tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "Bonjour from the fake Claude."
    assert second.choices[0].finish_reason == "stop"
    assert fake.requests[1]["body"]["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_01A", "name": "get_weather",
             "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_01B", "name": "get_weather",
             "input": {"city": "Rome"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C, sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_01B", "content": "24C, clear"}]}]


def test_json_schema_response_format_uses_a_forced_tool_and_returns_json_content(
        client: openai.OpenAI, fake: FakeAnthropic) -> None:
    schema: Any = {"type": "object", "properties": {"city": {"type": "string"}}}
    fake.tool_input = {"city": "Lyon"}
    out = client.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "Pick a city"}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "city_pick", "schema": schema}})
    assert json.loads(out.choices[0].message.content or "") == {"city": "Lyon"}
    assert out.choices[0].message.tool_calls is None
    assert out.choices[0].finish_reason == "stop"
    body = sent(fake)
    assert body["tool_choice"] == {"type": "tool", "name": "city_pick"}
    assert body["tools"][0]["name"] == "city_pick"
    assert body["tools"][0]["input_schema"] == schema


# --- stop reasons and usage ---------------------------------------------------------------


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("refusal", "content_filter")])
@pytest.mark.parametrize("stream", [False, True])
def test_stop_reason_maps_to_finish_reason(client: openai.OpenAI, fake: FakeAnthropic,
                                           stop_reason: str, finish: str, stream: bool) -> None:
    fake.stop_reason, fake.stop_sequence = stop_reason, "###"
    messages: Any = [{"role": "user", "content": "Hi"}]
    if stream:
        reasons = [c.choices[0].finish_reason for c in client.chat.completions.create(
            model="claude", messages=messages, stream=True) if c.choices]
        assert reasons[-1] == finish
    else:
        out = client.chat.completions.create(model="claude", messages=messages)
        assert out.choices[0].finish_reason == finish


def test_usage_counts_cache_reads_and_writes_and_trace_is_priced(
        client: openai.OpenAI, keel: Keel) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="claude", messages=[{"role": "user", "content": "Hi"}])
    out = raw.parse()
    assert out.usage is not None
    assert out.usage.prompt_tokens == 150  # 20 fresh + 100 cache read + 30 cache write
    assert out.usage.completion_tokens == 9
    assert out.usage.total_tokens == 159
    assert out.usage.prompt_tokens_details is not None
    assert out.usage.prompt_tokens_details.cached_tokens == 100
    keel.flush()
    trace = httpx.get(f"{keel.url}/api/traces/{raw.headers['x-keel-trace-id']}",
                      headers=keel.admin_headers()).json()
    assert trace["endpoint"] == "chat"
    assert trace["provider"] == "claude-api"
    assert trace["model_served"] == "claude-sonnet-4-20250101"
    assert (trace["input_tokens"], trace["cached_tokens"], trace["cache_write_tokens"],
            trace["output_tokens"]) == (150, 100, 30, 9)
    expected = (20 * 3.0 + 100 * 0.3 + 30 * 3.75 + 9 * 15.0) / 1_000_000
    assert trace["cost_usd"] == pytest.approx(expected)


# --- streaming ----------------------------------------------------------------------------


def test_streaming_text_and_final_usage_chunk(client: openai.OpenAI, fake: FakeAnthropic,
                                             keel: Keel) -> None:
    chunks = list(client.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "Hi"}], stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Bonjour from the fake Claude."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 5
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (150, 9)
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 100
    assert sent(fake)["stream"] is True


def test_streaming_tool_call_arguments_reassemble(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "Weather?"}], stream=True,
        tools=[WEATHER_TOOL]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert text == "Let me look that up."
    assert calls[0].id == "toolu_01A" and calls[0].function is not None
    assert calls[0].function.name == "get_weather"
    assert {tc.index for tc in calls} == {0}
    args = "".join(tc.function.arguments or "" for tc in calls if tc.function)
    assert len([tc for tc in calls if tc.function and tc.function.arguments]) > 3
    assert json.loads(args) == {"city": "Paris", "unit": "celsius"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_streaming_json_schema_answer_arrives_as_content(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "Pick"}], stream=True,
        response_format={"type": "json_schema", "json_schema": {
            "name": "pick", "schema": {"type": "object"}}}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"city": "Paris", "unit": "celsius"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "error_type", "exc", "keel_status", "type_", "code"), [
    (400, "invalid_request_error", openai.BadRequestError, 400, "invalid_request_error",
     "upstream_rejected"),
    (401, "authentication_error", openai.APIStatusError, 502, "api_error",
     "upstream_auth_failed"),
    (403, "permission_error", openai.APIStatusError, 502, "api_error", "upstream_auth_failed"),
    (404, "not_found_error", openai.NotFoundError, 404, "not_found_error", "upstream_rejected"),
    (413, "request_too_large", openai.APIStatusError, 413, "request_too_large",
     "upstream_rejected"),
    (429, "rate_limit_error", openai.RateLimitError, 429, "rate_limit_error",
     "upstream_rate_limited"),
    (500, "api_error", openai.InternalServerError, 502, "api_error", "upstream_error"),
    (529, "overloaded_error", openai.InternalServerError, 503, "overloaded_error",
     "upstream_overloaded"),
])
def test_upstream_error_status_maps_to_keel_error(
        client: openai.OpenAI, fake: FakeAnthropic, status: int, error_type: str,
        exc: type[openai.APIStatusError], keel_status: int, type_: str, code: str) -> None:
    """Anthropic's error type reaches the client (it has no code: keel's is sent), except
    for a refused credential, which is keel's problem and not the client's."""
    fake.mode, fake.status, fake.error_type = "status", status, error_type
    fake.error_message = f"upstream says {error_type}"
    with pytest.raises(exc) as info:
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == keel_status
    assert (info.value.type, info.value.code) == (type_, code)
    assert f"upstream says {error_type}" in info.value.message
    assert info.value.response.headers.get("x-keel-trace-id")


def test_rate_limit_passes_retry_after_through(client: openai.OpenAI,
                                               fake: FakeAnthropic) -> None:
    fake.mode, fake.status, fake.error_type, fake.retry_after = \
        "status", 429, "rate_limit_error", "17"
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers["retry-after"] == "17"


def test_overloaded_error_event_before_any_output_is_a_503(client: openai.OpenAI,
                                                           fake: FakeAnthropic) -> None:
    fake.mode = "stream_error_first"
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="claude", stream=True,
                                       messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503
    assert info.value.code == "upstream_overloaded"


def test_error_event_mid_stream_reaches_client_and_trace(
        client: openai.OpenAI, fake: FakeAnthropic, keel: Keel) -> None:
    fake.mode, fake.error_type, fake.error_message = "stream_error", "api_error", "kaput"
    raw = client.chat.completions.with_raw_response.create(
        model="claude", stream=True, messages=[{"role": "user", "content": "x"}])
    received: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in raw.parse():
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Bonjour"
    assert "kaput" in info.value.message
    keel.flush()
    trace = httpx.get(f"{keel.url}/api/traces/{raw.headers['x-keel-trace-id']}",
                      headers=keel.admin_headers()).json()
    assert trace["error_type"] == "upstream_stream_error"
    assert "kaput" in trace["error_message"]


def test_stream_ending_without_message_stop_is_an_error(client: openai.OpenAI,
                                                        fake: FakeAnthropic) -> None:
    fake.mode = "truncated"
    with pytest.raises(openai.APIError) as info:
        list(client.chat.completions.create(model="claude", stream=True,
                                            messages=[{"role": "user", "content": "x"}]))
    assert "message_stop" in info.value.message
