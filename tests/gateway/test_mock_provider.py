"""The offline mock provider: deterministic content, configured latency and failures."""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

import orjson
import pytest

from keel.config import ProviderConfig
from keel.errors import UpstreamError, UpstreamRateLimited, UpstreamTimeout
from keel.gateway.providers.mock import MockProvider

BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user",
                                                    "content": "Where is my invoice?"}]}


def provider(**kw: Any) -> MockProvider:
    return MockProvider(ProviderConfig(name="mock", kind="mock", **kw))


async def test_same_input_same_answer_and_seed_changes_it() -> None:
    p = provider()
    a = await p.chat(BODY)
    b = await p.chat(BODY)
    c = await p.chat({**BODY, "seed": 3})
    text = a.body["choices"][0]["message"]["content"]
    assert text == b.body["choices"][0]["message"]["content"]
    assert text != c.body["choices"][0]["message"]["content"]
    assert "invoice" in text
    assert a.usage.input_tokens > 0 and a.usage.output_tokens > 0


@pytest.mark.parametrize(("errors", "exc", "status"), [
    ({"rate_limit": 1.0}, UpstreamRateLimited, 429),
    ({"server_error": 1.0}, UpstreamError, 502),
])
async def test_configured_failures(errors: dict[str, float], exc: type[Exception],
                                   status: int) -> None:
    p = provider(errors=errors)
    with pytest.raises(exc) as info:
        await p.chat(BODY)
    assert info.value.status == status  # type: ignore[attr-defined]
    with pytest.raises(exc):
        await anext(p.chat_stream(BODY))


async def test_configured_timeout_waits_then_fails() -> None:
    p = provider(errors={"timeout": 1.0}, timeout_s=0.05)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(UpstreamTimeout, match=r"0\.05s"):
        await p.chat(BODY)
    assert loop.time() - start >= 0.05


async def test_partial_error_rate_fails_about_that_often() -> None:
    p = provider(errors={"rate_limit": 0.2}, seed=1)
    failures = 0
    for _ in range(500):
        try:
            await p.chat(BODY)
        except UpstreamRateLimited:
            failures += 1
    assert 60 <= failures <= 140  # 20% of 500, with generous slack for the seeded RNG


async def test_latency_follows_the_configured_median() -> None:
    p = provider(latency={"p50_ms": 20, "p99_ms": 80})
    samples = [p._latency() * 1000 for _ in range(2000)]
    assert 17 <= statistics.median(samples) <= 23
    assert max(samples) > 40  # a tail exists
    fixed = provider(latency={"p50_ms": 10})
    assert {fixed._latency() for _ in range(10)} == {0.01}


async def test_stream_ends_with_finish_reason_then_usage() -> None:
    chunks = [c async for c in provider().chat_stream(BODY)]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


async def test_stop_sequence_cuts_the_answer() -> None:
    p = provider()
    full = (await p.chat(BODY)).body["choices"][0]["message"]["content"]
    word = full.split(" ")[3]
    cut = (await p.chat({**BODY, "stop": [word]})).body["choices"][0]["message"]["content"]
    assert word not in cut and full.startswith(cut)


# --- stop sequences ---------------------------------------------------------------------------


async def test_a_stop_sequence_that_ends_the_text_is_named_on_the_choice() -> None:
    p = provider()
    full = (await p.chat(BODY)).body["choices"][0]["message"]["content"]
    words = full.split(" ")
    body = {**BODY, "stop": ["no such words", words[3], words[5]]}
    choice = (await p.chat(body)).body["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["stop_sequence"] == words[3]
    chunks = [c async for c in p.chat_stream(body)]
    last = chunks[-2]["choices"][0]
    assert last["finish_reason"] == "stop" and last["stop_sequence"] == words[3]
    assert all("stop_sequence" not in c["choices"][0] for c in chunks[:-2])
    # two sequences overlap: the one a model completes first (ends earliest) stops it
    phrase = " ".join(words[3:6])
    first = (await p.chat({**BODY, "stop": [phrase, words[4]]})).body["choices"][0]
    assert first["stop_sequence"] == words[4]
    assert first["message"]["content"] == full[: full.index(words[4])]


async def test_no_stop_sequence_is_named_when_none_ended_the_text() -> None:
    p = provider()
    plain = (await p.chat({**BODY, "stop": ["no such words"]})).body["choices"][0]
    assert plain["finish_reason"] == "stop" and "stop_sequence" not in plain
    full = plain["message"]["content"]
    late = full.split(" ")[-1]  # reached after max_tokens: the length limit came first
    cut = (await p.chat({**BODY, "stop": [late], "max_tokens": 3})).body["choices"][0]
    assert cut["finish_reason"] == "length" and "stop_sequence" not in cut


# --- the event loop -----------------------------------------------------------------------------


async def ticks_during(coro: Any) -> tuple[Any, int]:
    """(what ``coro`` returned, how often another task ran on the loop meanwhile)."""
    ticks, done = 0, False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        result = await coro
    finally:
        done = True
        await task
    return result, ticks


async def test_a_large_embeddings_request_is_computed_off_the_event_loop() -> None:
    body = {"model": "e", "input": [f"text number {i}" for i in range(128)],
            "dimensions": 8192, "encoding_format": "base64"}
    result, ticks = await ticks_during(provider().embed(body))
    assert len(result.body["data"]) == 128 and ticks > 0
    _, small = await ticks_during(provider().embed({"model": "e", "input": "one text"}))
    assert small == 0  # the usual request is answered inline


async def test_a_large_chat_request_is_computed_off_the_event_loop() -> None:
    body = {**BODY, "n": 64, "logprobs": True, "top_logprobs": 20}
    result, ticks = await ticks_during(provider().chat(body))
    assert len(result.body["choices"]) == 64 and ticks > 0
    chunks, ticks = await ticks_during(_collect(provider().chat_stream(body)))
    assert chunks[-1]["usage"]["completion_tokens"] > 0 and ticks > 0


async def _collect(stream: Any) -> list[Any]:
    return [c async for c in stream]


async def test_embedding_vectors_are_unit_length_and_keep_their_values() -> None:
    p = provider()
    one = await p.embed({"model": "e", "input": "reset my password", "dimensions": 64})
    vec = one.body["data"][0]["embedding"]
    assert len(vec) == 64 and abs(sum(v * v for v in vec) - 1.0) < 1e-5
    # the values clients and the semantic cache have always seen for these words
    assert sorted(round(v, 6) for v in vec if v) == sorted(v for v in vec if v)


# --- schema examples ----------------------------------------------------------------------------


@pytest.mark.parametrize(("schema", "expected"), [
    ({"type": "integer", "minimum": 3, "maximum": 9}, 3),
    ({"type": "integer", "exclusiveMinimum": 3}, 4),
    ({"type": "integer", "maximum": -2}, -2),
    ({"type": "number", "minimum": 0.5, "multipleOf": 0.25}, 0.5),
    ({"type": "string", "format": "date-time"}, "2024-01-01T00:00:00Z"),
    ({"type": "string", "maxLength": 3}, "exa"),
    ({"type": "string", "minLength": 9}, "examplexx"),
    ({"enum": ["b", "a"]}, "b"),
    ({"const": 7}, 7),
    ({"type": ["null", "boolean"]}, True),
    ({"anyOf": [{"type": "null"}, {"type": "integer"}]}, 1),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 3}, [1, 1, 1]),
    ({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}],
      "items": False}, ["example", 1]),
    ({"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}},
                {"type": "object", "properties": {"b": {"type": "boolean"}}}]},
     {"a": 1, "b": True}),
    ({"$ref": "#/definitions/n", "definitions": {"n": {"type": "integer", "minimum": 5}}}, 5),
])
def test_schema_examples_honour_the_keywords(schema: dict[str, Any], expected: Any) -> None:
    from keel.gateway.providers.mock_schema import example

    assert example(schema)[0] == expected


def test_a_required_recursion_is_refused_and_an_optional_one_ends() -> None:
    from keel.gateway.providers.mock_schema import SchemaProblem, example

    loop = {"$defs": {"n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}},
                            "required": ["next"]}}, "$ref": "#/$defs/n"}
    with pytest.raises(SchemaProblem, match="recursive"):
        example(loop)
    optional = {"type": "object", "properties": {"next": {"$ref": "#"}, "v": {"type": "integer"}},
                "required": ["v"]}
    assert example(optional)[0] == {"v": 1, "next": {"v": 1}}


async def test_a_schema_past_the_value_budget_is_a_400() -> None:
    from keel.errors import InvalidRequest

    wide = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(200)}}
    body = {**BODY, "n": 64, "response_format": {"type": "json_schema",
                                                 "json_schema": {"name": "w", "schema": wide}}}
    with pytest.raises(InvalidRequest, match="at most 10000 values") as info:
        await provider().chat(body)
    assert info.value.status == 400
    one = await provider().chat({**body, "n": 1})
    assert len(orjson.loads(one.body["choices"][0]["message"]["content"])) == 200


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"type": "integer"}}, "required": [{"x": 1}, ["a"]]},
    {"type": "object", "properties": {"a": {"type": "integer", "minimum": 10**30}}},
    {"type": "number", "minimum": 1e14, "multipleOf": 1e-300},
    {"type": "object", "properties": {"a": {"$ref": "https://example.com/schema.json"}}},
])
async def test_odd_schemas_get_an_answer_or_a_400_never_a_crash(schema: dict[str, Any]) -> None:
    from keel.errors import InvalidRequest

    body = {**BODY, "response_format": {"type": "json_schema",
                                        "json_schema": {"name": "s", "schema": schema}}}
    try:
        answer = await provider().chat(body)
    except InvalidRequest as exc:
        assert exc.status == 400 and exc.param == "response_format.json_schema.schema"
    else:
        orjson.loads(answer.body["choices"][0]["message"]["content"])


async def test_answer_length_is_capped_whatever_output_tokens_says() -> None:
    from keel.gateway.providers.mock import MAX_ANSWER_TOKENS

    long = provider(output_tokens=10_000_000)
    result = await long.chat(BODY)
    assert 0 < result.usage.output_tokens <= MAX_ANSWER_TOKENS * 7 // 5 + 64


async def test_log_probabilities_past_the_request_bound_are_a_400() -> None:
    from keel.errors import InvalidRequest
    from keel.gateway.providers.mock import MAX_LOGPROBS

    big = provider(output_tokens=4000)
    body = {**BODY, "n": 64, "logprobs": True, "top_logprobs": 20}
    with pytest.raises(InvalidRequest, match=f"makes in one request \\({MAX_LOGPROBS}\\)") as info:
        await big.chat(body)
    assert info.value.status == 400 and info.value.param == "top_logprobs"
    with pytest.raises(InvalidRequest):
        await anext(big.chat_stream(body))
    ok = await provider().chat(body)  # the usual answer length: within the bound
    assert len(ok.body["choices"]) == 64
