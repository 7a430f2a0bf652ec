"""The Gemini adapter: end to end through keel (openai SDK -> keel -> fake Gemini), and the
pure translation functions in ``keel.gateway.gemini_format``."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from keel.errors import InvalidRequest, UnsupportedOperation, UpstreamError
from keel.gateway import gemini_format as gf
from tests.support.fake_gemini import API_KEY, MODEL_VERSION, FakeGemini
from tests.support.keel import Keel, running_keel
from tests.support.servers import ThreadServer, serve

MODEL = "gemini-flash"
UPSTREAM = "gemini-2.5-flash"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[FakeGemini, ThreadServer]]:
    fake = FakeGemini()
    with serve(fake.app) as server:
        yield fake, server


@pytest.fixture(scope="module")
def keel_server(fake_server: tuple[FakeGemini, ThreadServer],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keel]:
    base_url = fake_server[1].url + "/v1beta"
    config = {
        "providers": [
            {"name": "gem", "kind": "gemini", "base_url": base_url, "api_key": API_KEY,
             "headers": {"x-extra": "yes"}},
            {"name": "gem-badkey", "kind": "gemini", "base_url": base_url, "api_key": "wrong"},
        ],
        "models": [
            {"name": MODEL, "provider": "gem", "upstream": UPSTREAM,
             "price": {"input_per_mtok": 1.0, "output_per_mtok": 10.0,
                       "cached_input_per_mtok": 0.25}},
            {"name": "gemini-embed", "provider": "gem", "upstream": "gemini-embedding-001",
             "kind": "embedding"},
            {"name": "gemini-badkey", "provider": "gem-badkey", "upstream": UPSTREAM},
        ],
    }
    with running_keel(tmp_path_factory.mktemp("keel"), config) as keel:
        yield keel


@pytest.fixture
def fake(fake_server: tuple[FakeGemini, ThreadServer]) -> FakeGemini:
    fake_server[0].reset()
    return fake_server[0]


@pytest.fixture
def keel(keel_server: Keel) -> Keel:
    return keel_server


@pytest.fixture
def client(keel: Keel) -> openai.OpenAI:
    return openai.OpenAI(base_url=keel.base_url, api_key=keel.admin_key, max_retries=0)


def stored_trace(keel: Keel, trace_id: str) -> dict[str, Any]:
    keel.flush()
    resp = httpx.get(f"{keel.url}/api/traces/{trace_id}", headers=keel.admin_headers())
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


HELLO: list[Any] = [{"role": "user", "content": "Hi"}]


# --- non-streaming chat ---------------------------------------------------------------------


def test_text_answer_becomes_openai_completion(client: openai.OpenAI, fake: FakeGemini) -> None:
    out = client.chat.completions.create(model=MODEL, messages=HELLO)

    assert out.object == "chat.completion"
    assert out.id == "chatcmpl-resp-123"
    assert out.model == MODEL_VERSION
    assert out.choices[0].message.role == "assistant"
    assert out.choices[0].message.content == "Hello from the fake Gemini."
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) == (
        20, 8, 28)
    req = fake.last
    assert req["path"] == f"/v1beta/models/{UPSTREAM}:generateContent"
    assert req["headers"]["x-goog-api-key"] == API_KEY
    assert req["headers"]["x-extra"] == "yes"
    assert req["body"] == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


def test_system_and_developer_messages_go_to_system_instruction(
        client: openai.OpenAI, fake: FakeGemini) -> None:
    client.chat.completions.create(model=MODEL, messages=[
        {"role": "system", "content": "Be terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "Hi"},
    ])
    body = fake.last["body"]
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."},
                                                   {"text": "Answer in French."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]


def test_multi_turn_conversation_maps_assistant_to_model_role(
        client: openai.OpenAI, fake: FakeGemini) -> None:
    client.chat.completions.create(model=MODEL, messages=[
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And times 3?"},
    ])
    assert fake.last["body"]["contents"] == [
        {"role": "user", "parts": [{"text": "What is 2+2?"}]},
        {"role": "model", "parts": [{"text": "4"}]},
        {"role": "user", "parts": [{"text": "And times 3?"}]},
    ]


def test_sampling_options_become_generation_config(client: openai.OpenAI,
                                                    fake: FakeGemini) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}},
              "required": ["a"], "additionalProperties": False}
    client.chat.completions.create(
        model=MODEL, messages=HELLO, temperature=0.3, top_p=0.9, max_tokens=50,
        max_completion_tokens=64, stop="END", n=2, seed=7, presence_penalty=0.5,
        frequency_penalty=-0.5,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "answer", "schema": schema, "strict": True}},
    )
    assert fake.last["body"]["generationConfig"] == {
        "temperature": 0.3, "topP": 0.9, "maxOutputTokens": 64, "stopSequences": ["END"],
        "candidateCount": 2, "seed": 7, "presencePenalty": 0.5, "frequencyPenalty": -0.5,
        "responseMimeType": "application/json", "responseJsonSchema": schema,
    }


def test_image_data_url_is_sent_inline(client: openai.OpenAI, fake: FakeGemini) -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]}])
    assert fake.last["body"]["contents"][0]["parts"] == [
        {"text": "What is this?"}, {"inlineData": {"mimeType": "image/png", "data": png}}]


WEATHER_TOOL: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


def test_tool_call_round_trip(client: openai.OpenAI, fake: FakeGemini) -> None:
    fake.parts = [{"text": "Let me check."},
                  {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]
    question: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(
        model=MODEL, messages=question, tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}})

    sent = fake.last["body"]
    assert sent["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "Weather for a city",
        "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"]}]}]
    assert sent["toolConfig"] == {"functionCallingConfig": {
        "mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == {"city": "Paris"}
    assert call.id.startswith("call_")

    fake.parts = [{"text": "It is sunny in Paris."}]
    follow_up: list[Any] = [
        *question,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny", "temp_c": 21}'},
    ]
    second = client.chat.completions.create(model=MODEL, tools=[WEATHER_TOOL],
                                            messages=follow_up)
    assert second.choices[0].message.content == "It is sunny in Paris."
    assert fake.last["body"]["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [
            {"text": "Let me check."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {
            "name": "get_weather", "response": {"sky": "sunny", "temp_c": 21}}}]},
    ]


@pytest.mark.parametrize(("gemini_reason", "openai_reason"), [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
    ("RECITATION", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"),
    ("OTHER", "stop"),
])
def test_finish_reason_is_mapped(client: openai.OpenAI, fake: FakeGemini, gemini_reason: str,
                                 openai_reason: str) -> None:
    fake.finish_reason = gemini_reason
    out = client.chat.completions.create(model=MODEL, messages=HELLO)
    assert out.choices[0].finish_reason == openai_reason


def test_safety_stop_without_content_gives_null_content(client: openai.OpenAI,
                                                        fake: FakeGemini) -> None:
    fake.parts, fake.finish_reason = [], "SAFETY"
    out = client.chat.completions.create(model=MODEL, messages=HELLO)
    assert out.choices[0].finish_reason == "content_filter"
    assert out.choices[0].message.content is None


def test_blocked_prompt_is_a_content_filter_answer(client: openai.OpenAI,
                                                   fake: FakeGemini) -> None:
    fake.mode = "blocked"
    out = client.chat.completions.create(model=MODEL, messages=HELLO)
    assert out.choices[0].finish_reason == "content_filter"
    assert out.choices[0].message.content is None
    assert out.choices[0].message.refusal == "Gemini blocked the prompt (blockReason SAFETY)"
    assert out.usage is not None and out.usage.prompt_tokens == 9


def test_thought_parts_are_left_out_of_the_content(client: openai.OpenAI,
                                                   fake: FakeGemini) -> None:
    fake.parts = [{"text": "Thinking about greetings...", "thought": True},
                  {"text": "Hello!"}]
    out = client.chat.completions.create(model=MODEL, messages=HELLO)
    assert out.choices[0].message.content == "Hello!"


def test_usage_with_cached_and_thinking_tokens_is_stored_and_priced(
        client: openai.OpenAI, fake: FakeGemini, keel: Keel) -> None:
    fake.usage = {"promptTokenCount": 1000, "cachedContentTokenCount": 600,
                  "candidatesTokenCount": 50, "thoughtsTokenCount": 150,
                  "totalTokenCount": 1200}
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO)
    out = raw.parse()
    assert out.usage is not None
    assert out.usage.prompt_tokens == 1000
    assert out.usage.completion_tokens == 200
    assert out.usage.total_tokens == 1200
    assert out.usage.prompt_tokens_details is not None
    assert out.usage.prompt_tokens_details.cached_tokens == 600
    assert out.usage.completion_tokens_details is not None
    assert out.usage.completion_tokens_details.reasoning_tokens == 150

    trace = stored_trace(keel, raw.headers["x-keel-trace-id"])
    assert trace["provider"] == "gem"
    assert trace["model_requested"] == MODEL
    assert trace["model_served"] == MODEL_VERSION
    assert trace["status"] == 200
    assert (trace["input_tokens"], trace["output_tokens"], trace["cached_tokens"],
            trace["reasoning_tokens"]) == (1000, 200, 600, 150)
    # 400 fresh input at $1, 600 cached at $0.25, 200 output at $10 (per million)
    assert trace["cost_usd"] == pytest.approx((400 * 1.0 + 600 * 0.25 + 200 * 10.0) / 1e6)
    assert trace["response"]["choices"][0]["message"]["content"] == "Hello from the fake Gemini."


# --- streaming ------------------------------------------------------------------------------


def test_streamed_text_arrives_as_openai_chunks_with_final_usage(
        client: openai.OpenAI, fake: FakeGemini, keel: Keel) -> None:
    fake.parts = [{"text": "One two three four"}]
    fake.usage = {"promptTokenCount": 12, "cachedContentTokenCount": 4,
                  "candidatesTokenCount": 4, "thoughtsTokenCount": 3, "totalTokenCount": 19}
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True})
    chunks = list(raw.parse())

    assert fake.last["path"] == f"/v1beta/models/{UPSTREAM}:streamGenerateContent"
    assert fake.last["query"] == {"alt": "sse"}
    content = [c.choices[0].delta.content for c in chunks if c.choices]
    assert "".join(x or "" for x in content) == "One two three four"
    assert len(content) == 4
    roles = [c.choices[0].delta.role for c in chunks if c.choices]
    assert roles == ["assistant", None, None, None]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes == [None, None, None, "stop"]
    assert all(c.model == MODEL_VERSION for c in chunks)
    assert len({c.id for c in chunks}) == 1
    final = chunks[-1]
    assert final.choices == []
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (12, 7)
    assert final.usage.prompt_tokens_details is not None
    assert final.usage.prompt_tokens_details.cached_tokens == 4
    assert final.usage.completion_tokens_details is not None
    assert final.usage.completion_tokens_details.reasoning_tokens == 3

    trace = stored_trace(keel, raw.headers["x-keel-trace-id"])
    assert trace["stream"] is True
    assert trace["status"] == 200
    assert (trace["input_tokens"], trace["output_tokens"], trace["cached_tokens"],
            trace["reasoning_tokens"]) == (12, 7, 4, 3)
    assert trace["model_served"] == MODEL_VERSION
    assert trace["ttft_ms"] is not None
    assert trace["response"]["choices"][0]["message"]["content"] == "One two three four"
    assert trace["response"]["choices"][0]["finish_reason"] == "stop"


def test_streamed_usage_is_withheld_unless_the_client_asks(client: openai.OpenAI,
                                                           fake: FakeGemini) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=HELLO, stream=True))
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_streamed_function_call_arrives_as_tool_call_delta(
        client: openai.OpenAI, fake: FakeGemini, keel: Keel) -> None:
    fake.parts = [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                  {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Oslo and Rome?"}],
        tools=[WEATHER_TOOL], tool_choice="required", stream=True)
    chunks = list(raw.parse())

    assert fake.last["body"]["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert [d.index for d in deltas] == [0, 1]
    functions = [d.function for d in deltas if d.function is not None]
    assert [f.name for f in functions] == ["get_weather", "get_weather"]
    assert [orjson.loads(f.arguments or "") for f in functions] == [
        {"city": "Oslo"}, {"city": "Rome"}]
    ids = [d.id for d in deltas]
    assert all(i and i.startswith("call_") for i in ids) and ids[0] != ids[1]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    trace = stored_trace(keel, raw.headers["x-keel-trace-id"])
    calls = trace["response"]["choices"][0]["message"]["tool_calls"]
    assert [(c["id"], c["function"]["name"]) for c in calls] == [
        (ids[0], "get_weather"), (ids[1], "get_weather")]
    assert trace["response"]["choices"][0]["finish_reason"] == "tool_calls"


def test_streamed_prompt_block_ends_with_content_filter(client: openai.OpenAI,
                                                        fake: FakeGemini) -> None:
    fake.mode = "blocked"
    chunks = list(client.chat.completions.create(model=MODEL, messages=HELLO, stream=True))
    assert len(chunks) == 1
    assert chunks[0].choices[0].finish_reason == "content_filter"
    assert chunks[0].choices[0].delta.role == "assistant"


@pytest.mark.parametrize(("mode", "error_type"), [
    ("cut_stream", "upstream_stream_broken"),
    ("early_end", "upstream_stream_broken"),
    ("error_event", "upstream_stream_error"),
])
def test_stream_failing_midway_reaches_the_client_and_the_trace(
        client: openai.OpenAI, fake: FakeGemini, keel: Keel, mode: str, error_type: str) -> None:
    fake.mode = mode
    fake.parts = [{"text": "a b c d e f"}]
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO,
                                                           stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in raw.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert received and "".join(received) != "a b c d e f"
    # an error event says its Google status (the client sees it); the trace keeps keel's type
    assert info.value.code == ("UNAVAILABLE" if mode == "error_event" else error_type)

    trace = stored_trace(keel, raw.headers["x-keel-trace-id"])
    assert trace["status"] == 502
    assert trace["error_type"] == error_type


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "grpc", "wrap", "keel_status", "err_type", "keel_code"), [
    (429, "RESOURCE_EXHAUSTED", False, 429, "rate_limit_error", "upstream_rate_limited"),
    (400, "INVALID_ARGUMENT", False, 400, "invalid_request_error", "upstream_rejected"),
    (400, "INVALID_ARGUMENT", True, 400, "invalid_request_error", "upstream_rejected"),
    (404, "NOT_FOUND", False, 404, "not_found_error", "upstream_rejected"),
    (500, "INTERNAL", False, 502, "api_error", "upstream_error"),
    (503, "UNAVAILABLE", False, 502, "api_error", "upstream_error"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_gemini_error_maps_to_status_and_openai_error_body(
        client: openai.OpenAI, fake: FakeGemini, keel: Keel, status: int, grpc: str,
        wrap: bool, keel_status: int, err_type: str, keel_code: str, stream: bool) -> None:
    """Google's status string is the client's ``code`` (its type mapped to OpenAI's); the
    trace keeps keel's own error type."""
    fake.fail(status, grpc, f"gemini says {grpc}", wrap=wrap)
    resp = httpx.post(f"{keel.base_url}/chat/completions", headers=keel.admin_headers(),
                      json={"model": MODEL, "messages": HELLO, "stream": stream})
    assert resp.status_code == keel_status
    err = resp.json()["error"]
    assert err["type"] == err_type
    assert err["code"] == grpc
    assert f"gemini says {grpc}" in err["message"]
    assert "'gem'" in err["message"]
    trace = stored_trace(keel, resp.headers["x-keel-trace-id"])
    assert (trace["status"], trace["error_type"]) == (keel_status, keel_code)


def test_rate_limit_surfaces_as_sdk_rate_limit_error(client: openai.OpenAI,
                                                     fake: FakeGemini) -> None:
    fake.fail(429, "RESOURCE_EXHAUSTED", "Quota exceeded for metric generate_content")
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=MODEL, messages=HELLO)
    assert info.value.status_code == 429
    assert "Quota exceeded" in info.value.message


def test_bad_gemini_api_key_is_reported_as_keel_credentials_problem(
        client: openai.OpenAI, fake: FakeGemini) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gemini-badkey", messages=HELLO)
    assert info.value.status_code == 502
    assert info.value.code == "upstream_auth_failed"
    assert "API key not valid" in info.value.message
    assert fake.last["headers"]["x-goog-api-key"] == "wrong"


def test_tool_result_for_unknown_call_is_rejected_before_calling_gemini(
        client: openai.OpenAI, fake: FakeGemini) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=[
            {"role": "user", "content": "Hi"},
            {"role": "tool", "tool_call_id": "call_nope", "content": "42"},
        ])
    assert "call_nope" in info.value.message
    assert fake.requests == []


# --- embeddings -----------------------------------------------------------------------------


def test_embeddings_use_batch_embed_and_estimate_usage(client: openai.OpenAI, fake: FakeGemini,
                                                       keel: Keel) -> None:
    raw = client.embeddings.with_raw_response.create(
        model="gemini-embed", input=["hello world", "bye"], dimensions=3,
        encoding_format="float")
    out = raw.parse()
    req = fake.last
    assert req["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert req["body"] == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello world"}]},
         "outputDimensionality": 3},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "bye"}]},
         "outputDimensionality": 3}]}
    assert [d.index for d in out.data] == [0, 1]
    assert out.data[0].embedding == [0.11, 0.12, 0.13]
    assert out.data[1].embedding == [0.03, 0.04, 0.05]
    # no usage from Gemini: estimated at ~4 chars/token -> 3 + 1
    assert out.usage.prompt_tokens == 4
    trace = stored_trace(keel, raw.headers["x-keel-trace-id"])
    assert (trace["endpoint"], trace["input_tokens"], trace["provider"]) == (
        "embeddings", 4, "gem")


def test_embeddings_in_base64_decode_to_the_same_vectors(client: openai.OpenAI,
                                                         fake: FakeGemini) -> None:
    # the SDK asks for base64 by default and decodes it itself
    out = client.embeddings.create(model="gemini-embed", input="hello world")
    assert fake.last["body"]["requests"][0].get("outputDimensionality") is None
    assert out.data[0].embedding == pytest.approx([0.11, 0.12, 0.13, 0.14])


def test_embedding_usage_reported_by_gemini_wins(client: openai.OpenAI,
                                                 fake: FakeGemini) -> None:
    fake.embedding_usage = {"promptTokenCount": 17}
    out = client.embeddings.create(model="gemini-embed", input="hello", encoding_format="float")
    assert out.usage.prompt_tokens == 17


# --- pure translation -----------------------------------------------------------------------


def test_tool_response_wraps_anything_that_is_not_an_object() -> None:
    assert gf.tool_response('{"ok": true}') == {"ok": True}
    assert gf.tool_response("[1, 2]") == {"content": [1, 2]}
    assert gf.tool_response("42") == {"content": 42}
    assert gf.tool_response("sunny, 21C") == {"content": "sunny, 21C"}
    assert gf.tool_response([{"type": "text", "text": "done"}]) == {"content": "done"}


def test_parallel_tool_results_are_merged_into_one_user_turn() -> None:
    _, contents = gf.convert_messages([
        {"role": "user", "content": "both"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": '{"x":1}'}},
        ]},
        {"role": "tool", "tool_call_id": "b", "content": "B"},
        {"role": "tool", "tool_call_id": "a", "content": "A"},
    ])
    assert contents == [
        {"role": "user", "parts": [{"text": "both"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}},
                                    {"functionCall": {"name": "g", "args": {"x": 1}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "g", "response": {"content": "B"}}},
            {"functionResponse": {"name": "f", "response": {"content": "A"}}}]},
    ]


def test_unknown_tool_call_id_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest) as info:
        gf.convert_messages([{"role": "tool", "tool_call_id": "x1", "content": "1"}])
    assert info.value.param == "messages[0].tool_call_id"


def test_tool_call_arguments_must_be_a_json_object() -> None:
    with pytest.raises(InvalidRequest) as info:
        gf.convert_messages([{"role": "assistant", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}])
    assert info.value.param == "messages[0].tool_calls[0].function.arguments"


def test_media_parts() -> None:
    parts = gf.user_parts([
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
        {"type": "image_url", "image_url": {"url": "data:text/plain,hi%20there"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
    ], "content")
    assert parts == [
        {"inlineData": {"mimeType": "image/jpeg", "data": "QUJD"}},
        {"inlineData": {"mimeType": "text/plain",
                        "data": base64.b64encode(b"hi there").decode()}},
        {"fileData": {"fileUri": "https://example.com/cat.png", "mimeType": "image/png"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
    ]
    with pytest.raises(InvalidRequest):
        gf.user_parts([{"type": "video", "video": {}}], "content")


@pytest.mark.parametrize(("choice", "config"), [
    ("auto", {"mode": "AUTO"}),
    ("none", {"mode": "NONE"}),
    ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "f"}},
     {"mode": "ANY", "allowedFunctionNames": ["f"]}),
    ({"name": "f"}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),  # legacy function_call
])
def test_tool_choice_maps_to_function_calling_config(choice: Any, config: Any) -> None:
    assert gf.tool_choice(choice) == config


def test_generation_config_details() -> None:
    assert gf.generation_config({"max_tokens": 10, "stop": ["a", "b"]}) == {
        "maxOutputTokens": 10, "stopSequences": ["a", "b"]}
    assert gf.generation_config({"response_format": {"type": "json_object"}}) == {
        "responseMimeType": "application/json"}
    assert gf.generation_config({"response_format": {"type": "text"}, "temperature": 0}) == {
        "temperature": 0}
    assert "generationConfig" not in gf.to_gemini_request({"messages": HELLO})


def test_non_function_tools_are_rejected() -> None:
    with pytest.raises(InvalidRequest):
        gf.function_declarations({"tools": [{"type": "web_search"}]})


def test_usage_counts_thoughts_as_output_and_tool_prompts_as_input() -> None:
    usage = gf.usage_from_gemini({"promptTokenCount": 10, "toolUsePromptTokenCount": 5,
                                  "cachedContentTokenCount": 3, "candidatesTokenCount": 7,
                                  "thoughtsTokenCount": 2})
    assert (usage.input_tokens, usage.output_tokens, usage.cached_tokens,
            usage.reasoning_tokens) == (15, 9, 3, 2)
    assert gf.usage_from_gemini(None).to_openai()["total_tokens"] == 0


def test_finish_reason_with_function_call() -> None:
    assert gf.finish_reason("STOP", True) == "tool_calls"
    assert gf.finish_reason("MAX_TOKENS", True) == "length"
    assert gf.finish_reason("SPII", False) == "content_filter"
    assert gf.finish_reason("BLOCKLIST", False) == "content_filter"
    assert gf.finish_reason("MALFORMED_FUNCTION_CALL", False) == "stop"
    assert gf.finish_reason(None, False) is None


def test_tool_call_ids_are_stable_per_response_and_prefer_gemini_ids() -> None:
    data = {"responseId": "r1", "candidates": [{"content": {"parts": [
        {"functionCall": {"name": "f", "args": {"a": 1}}},
        {"functionCall": {"name": "f", "args": {"a": 2}, "id": "gem-id-7"}}]},
        "finishReason": "STOP"}]}
    first, _ = gf.to_openai_completion(data, "m", "p")
    again, _ = gf.to_openai_completion(data, "m", "p")
    ids = [c["id"] for c in first["choices"][0]["message"]["tool_calls"]]
    assert ids == [c["id"] for c in again["choices"][0]["message"]["tool_calls"]]
    assert ids[0].startswith("call_") and ids[1] == "gem-id-7"


def test_multiple_candidates_become_multiple_choices() -> None:
    data = {"candidates": [
        {"index": 0, "content": {"parts": [{"text": "A"}]}, "finishReason": "STOP"},
        {"index": 1, "content": {"parts": [{"text": "B"}]}, "finishReason": "MAX_TOKENS"}]}
    body, _ = gf.to_openai_completion(data, "gemini-x", "p")
    assert [(c["index"], c["message"]["content"], c["finish_reason"])
            for c in body["choices"]] == [(0, "A", "stop"), (1, "B", "length")]
    assert body["model"] == "gemini-x"


def test_response_without_candidates_or_block_reason_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError) as info:
        gf.to_openai_completion({"usageMetadata": {}}, "m", "gem")
    assert info.value.code == "upstream_bad_response"


def test_stream_translator_sends_role_once_and_skips_thought_only_events() -> None:
    tr = gf.StreamTranslator("m")
    assert tr.translate({"responseId": "r", "candidates": [
        {"content": {"parts": [{"text": "hmm", "thought": True}]}}]}) == []
    first = tr.translate({"candidates": [{"content": {"parts": [{"text": "Hi"}]}}]})
    second = tr.translate({"candidates": [{"content": {"parts": [{"text": "!"}]},
                                           "finishReason": "STOP"}],
                           "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2}})
    assert first[0]["id"] == second[0]["id"] == "chatcmpl-r"
    assert first[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hi"}
    assert second[0]["choices"][0]["delta"] == {"content": "!"}
    assert second[0]["choices"][0]["finish_reason"] == "stop"
    assert tr.done
    usage = tr.usage_chunk()
    assert usage is not None and usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_stream_translator_is_not_done_without_a_finish_reason() -> None:
    tr = gf.StreamTranslator("m")
    tr.translate({"candidates": [{"content": {"parts": [{"text": "Hi"}]}}]})
    assert not tr.done
    assert tr.usage_chunk() is None


def test_embedding_token_arrays_are_unsupported() -> None:
    with pytest.raises(UnsupportedOperation):
        gf.to_gemini_embed_request({"model": "e", "input": [[1, 2, 3]]}, "models/e")


def test_base64_embeddings_are_little_endian_float32() -> None:
    body, _ = gf.to_openai_embeddings({"embeddings": [{"values": [0.5, -1.0]}]},
                                      {"model": "e", "input": "x", "encoding_format": "base64"},
                                      "p")
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.5, -1.0)


def test_resource_name_keeps_full_names() -> None:
    from keel.gateway.providers.gemini import resource_name

    assert resource_name("gemini-2.5-pro") == "models/gemini-2.5-pro"
    assert resource_name("tunedModels/my-tune") == "tunedModels/my-tune"


def test_thought_signature_of_a_call_is_sent_back_when_the_call_is_replayed(
        client: openai.OpenAI, fake: FakeGemini) -> None:
    fake.parts = [{"functionCall": {"name": "get_weather", "args": {"city": "Lima"}},
                   "thoughtSignature": "c2lnLTE="}]
    question: list[Any] = [{"role": "user", "content": "Weather in Lima?"}]
    first = client.chat.completions.create(model=MODEL, messages=question, tools=[WEATHER_TOOL])
    calls = first.choices[0].message.tool_calls
    assert calls is not None

    fake.parts = [{"text": "Foggy."}]
    follow_up: list[Any] = [*question, first.choices[0].message.model_dump(exclude_none=True),
                            {"role": "tool", "tool_call_id": calls[0].id, "content": "fog"}]
    client.chat.completions.create(model=MODEL, tools=[WEATHER_TOOL], messages=follow_up)
    assert fake.last["body"]["contents"][1]["parts"] == [{
        "functionCall": {"name": "get_weather", "args": {"city": "Lima"}},
        "thoughtSignature": "c2lnLTE="}]


def _replay(model: str, signatures: dict[str, str]) -> list[Any]:
    body = {"model": model, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "tool", "tool_call_id": "b", "content": "2"}]}
    parts: list[Any] = gf.to_gemini_request(body, signatures)["contents"][1]["parts"]
    return [p.get("thoughtSignature") for p in parts]


def test_unsigned_replayed_calls_get_the_sentinel_only_on_gemini_3_and_later() -> None:
    assert _replay("gemini-3-pro-preview", {}) == [gf.SKIP_SIGNATURE, None]
    assert _replay("gemini-3.1-flash", {}) == [gf.SKIP_SIGNATURE, None]
    assert _replay("gemini-2.5-flash", {}) == [None, None]
    assert _replay("gemini-3-pro-preview", {"a": "real"}) == ["real", None]
    assert _replay("gemini-2.5-flash", {"b": "real"}) == [None, "real"]


def test_signature_memory_forgets_the_oldest_first() -> None:
    from keel.gateway.providers.gemini import SignatureMemory

    memory = SignatureMemory(limit=2)
    memory["a"], memory["b"], memory["c"] = "1", "2", "3"
    assert dict(memory) == {"b": "2", "c": "3"}


def test_legacy_functions_are_declared_and_checked() -> None:
    decls = gf.function_declarations({"functions": [{"name": "f", "parameters": {}}]})
    assert decls == [{"name": "f"}]
    with pytest.raises(InvalidRequest) as info:
        gf.function_declarations({"functions": [{"description": "no name"}]})
    assert info.value.param == "functions[0]"
