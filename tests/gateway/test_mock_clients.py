"""The official SDKs against a running keel serving the mock provider: base64 embeddings,
structured output of nested and recursive models, log probabilities, tool-call message
fields, and the bounds on what one mock request may cost."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessage
from pydantic import BaseModel

from keel.gateway.providers.mock import MAX_DIMENSIONS, MAX_EMBEDDING_VALUES
from tests.support.keel import Keel, running_keel

CONFIG: dict[str, Any] = {
    "providers": [{"name": "mock", "kind": "mock"}],
    "models": [{"name": "mock", "provider": "mock"},
               {"name": "mock-embedding", "provider": "mock", "kind": "embedding"}],
}
USER: Any = [{"role": "user", "content": "How do I reset my password?"}]


@pytest.fixture(scope="module")
def keel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keel]:
    with running_keel(tmp_path_factory.mktemp("keel"), CONFIG) as k:
        yield k


@pytest.fixture
def client(keel: Keel) -> openai.OpenAI:
    return openai.OpenAI(base_url=keel.base_url, api_key=keel.admin_key, max_retries=0)


def post(keel: Keel, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{keel.base_url}{path}", json=body, headers=keel.admin_headers(),
                      timeout=60)


# --- embeddings -------------------------------------------------------------------------------


def test_base64_embeddings_are_little_endian_float32_and_agree_with_floats(
        keel: Keel, client: openai.OpenAI) -> None:
    texts = ["billing question", "reset my password please"]
    floats = client.embeddings.create(model="mock-embedding", input=texts, dimensions=64,
                                      encoding_format="float")
    raw = client.embeddings.create(model="mock-embedding", input=texts, dimensions=64,
                                   encoding_format="base64")
    default = client.embeddings.create(model="mock-embedding", input=texts, dimensions=64)
    for f, b, d in zip(floats.data, raw.data, default.data, strict=True):
        assert isinstance(b.embedding, str)  # what the client asked for, as OpenAI sends it
        decoded = struct.unpack("<64f", base64.b64decode(b.embedding))
        assert len(f.embedding) == 64 and any(f.embedding)
        assert decoded == pytest.approx(f.embedding, abs=1e-6)
        assert d.embedding == pytest.approx(f.embedding, abs=1e-6)  # the SDK's default
    body = post(keel, "/embeddings", {"model": "mock-embedding", "input": "billing",
                                      "encoding_format": "base64"}).json()
    assert len(base64.b64decode(body["data"][0]["embedding"])) == 256 * 4


def test_an_unknown_encoding_format_is_a_400_naming_it(keel: Keel) -> None:
    r = post(keel, "/embeddings", {"model": "mock-embedding", "input": "x",
                                   "encoding_format": "binary"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "encoding_format" and "float or base64" in err["message"]


def test_dimensions_past_the_mock_limit_are_a_400_naming_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="mock-embedding", input="x", dimensions=65536)
    assert info.value.status_code == 400
    assert f"at most {MAX_DIMENSIONS}" in info.value.message
    assert info.value.body["param"] == "dimensions"  # type: ignore[index]
    ok = client.embeddings.create(model="mock-embedding", input="x", dimensions=3072,
                                  encoding_format="float")
    assert len(ok.data[0].embedding) == 3072


def test_inputs_times_dimensions_past_the_mock_limit_are_a_400(client: openai.OpenAI) -> None:
    inputs = ["some text"] * (MAX_EMBEDDING_VALUES // MAX_DIMENSIONS + 1)
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="mock-embedding", input=inputs,
                                 dimensions=MAX_DIMENSIONS)
    assert f"at most {MAX_EMBEDDING_VALUES}" in info.value.message
    assert "fewer inputs or fewer dimensions" in info.value.message


# --- structured output --------------------------------------------------------------------------


class Kind(StrEnum):
    home = "home"
    work = "work"


class Address(BaseModel):
    street: str
    city: str
    kind: Kind


class Item(BaseModel):
    name: str
    quantity: int
    tags: list[str]


class Order(BaseModel):
    customer: str
    shipping: Address
    previous: list[Address]
    items: list[Item]
    note: str | None
    total: float
    gift: bool


class Category(BaseModel):
    label: str
    children: list[Category]
    parent: Category | None


def test_parse_of_nested_models_with_refs_enums_and_nullables(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(model="mock", messages=USER,
                                               response_format=Order)
    order = completion.choices[0].message.parsed
    assert isinstance(order, Order)
    assert isinstance(order.shipping, Address) and order.shipping.kind in Kind
    assert order.items and isinstance(order.items[0], Item)
    again = client.chat.completions.parse(model="mock", messages=USER,
                                          response_format=Order)
    assert again.choices[0].message.parsed == order  # deterministic


def test_parse_of_a_recursive_model_ends(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(model="mock", messages=USER,
                                               response_format=Category)
    tree = completion.choices[0].message.parsed
    assert isinstance(tree, Category)
    # each $ref is expanded once along a path: the tree is at most two levels deep
    assert all(child.children == [] and child.parent is None for child in tree.children)


def test_parse_of_strict_tool_arguments_with_nested_models(client: openai.OpenAI) -> None:
    tool = openai.pydantic_function_tool(Order, name="place_order")
    completion = client.chat.completions.parse(
        model="mock", messages=USER, tools=[tool],
        tool_choice={"type": "function", "function": {"name": "place_order"}})
    calls = completion.choices[0].message.tool_calls
    assert calls is not None
    assert isinstance(calls[0].function.parsed_arguments, Order)


def test_a_dangling_ref_is_a_400_naming_the_schema(keel: Keel) -> None:
    r = post(keel, "/chat/completions", {
        "model": "mock", "messages": USER,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
            "type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}}}})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "response_format.json_schema.schema"
    assert "'#/$defs/Missing' does not resolve" in err["message"]


# --- log probabilities --------------------------------------------------------------------------


def test_logprobs_with_top_alternatives_in_the_openai_shape(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model="mock", messages=USER,
                                           logprobs=True, top_logprobs=3)
    choice = first.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    entries = choice.logprobs.content
    assert "".join(e.token for e in entries) == choice.message.content
    for e in entries:
        assert e.logprob <= 0 and e.bytes == list(e.token.encode())
        assert len(e.top_logprobs) == 3 and e.top_logprobs[0].token == e.token
        probs = [t.logprob for t in e.top_logprobs]
        assert probs == sorted(probs, reverse=True) and len({t.token for t in
                                                             e.top_logprobs}) == 3
    again = client.chat.completions.create(model="mock", messages=USER,
                                           logprobs=True, top_logprobs=3)
    assert again.choices[0].logprobs == choice.logprobs  # deterministic
    plain = client.chat.completions.create(model="mock", messages=USER,
                                           logprobs=True)
    assert plain.choices[0].logprobs is not None
    assert all(e.top_logprobs == [] for e in plain.choices[0].logprobs.content or [])
    none = client.chat.completions.create(model="mock", messages=USER)
    assert none.choices[0].logprobs is None


def test_streamed_logprobs_match_the_answer(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(model="mock", messages=USER,
                                          logprobs=True, top_logprobs=2)
    streamed: list[Any] = []
    text = ""
    for chunk in client.chat.completions.create(model="mock", messages=USER,
                                                logprobs=True, top_logprobs=2, stream=True):
        for c in chunk.choices:
            text += c.delta.content or ""
            if c.logprobs is not None and c.logprobs.content:
                assert "".join(e.token for e in c.logprobs.content) == c.delta.content
                streamed += c.logprobs.content
    assert text == full.choices[0].message.content
    assert full.choices[0].logprobs is not None
    assert streamed == full.choices[0].logprobs.content


@pytest.mark.parametrize(("extra", "param"), [
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"logprobs": "yes"}, "logprobs"),
])
def test_bad_logprobs_options_are_a_400_naming_them(keel: Keel, extra: dict[str, Any],
                                                    param: str) -> None:
    r = post(keel, "/chat/completions", {"model": "mock", "messages": USER, **extra})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


# --- message fields ---------------------------------------------------------------------------


def test_tool_call_and_text_messages_carry_every_field_the_sdk_types_name(
        client: openai.OpenAI) -> None:
    tools: Any = [{"type": "function", "function": {
        "name": "lookup_order", "parameters": {"type": "object", "properties": {
            "order_id": {"type": "string"}}, "required": ["order_id"]}}}]
    raw = client.chat.completions.with_raw_response.create(
        model="mock", messages=USER, tools=tools, tool_choice="required")
    choice = raw.http_response.json()["choices"][0]
    message = choice["message"]
    assert choice["finish_reason"] == "tool_calls" and "logprobs" in choice
    assert message["content"] is None and message["refusal"] is None  # keys present, null
    assert message["role"] == "assistant"
    call = message["tool_calls"][0]
    assert set(call) == {"id", "type", "function"} and call["type"] == "function"
    assert set(call["function"]) == {"name", "arguments"}
    text = client.chat.completions.with_raw_response.create(
        model="mock", messages=USER).http_response.json()["choices"][0]["message"]
    for msg in (message, text):
        # every field the SDK's message type declares that OpenAI always sends
        assert {"role", "content", "refusal"} <= set(msg) <= set(
            ChatCompletionMessage.model_fields)


# --- the Anthropic SDK on /v1/messages ----------------------------------------------------------


def test_anthropic_tool_use_input_follows_a_schema_with_defs(keel: Keel) -> None:
    import anthropic

    client = anthropic.Anthropic(base_url=keel.url, api_key=keel.admin_key, max_retries=0)
    schema = Order.model_json_schema()  # $defs and $ref, as pydantic writes them
    message = client.messages.create(
        model="mock", max_tokens=200, messages=USER,
        tools=[{"name": "place_order", "description": "Place an order",
                "input_schema": schema}],
        tool_choice={"type": "tool", "name": "place_order"})
    [block] = [b for b in message.content if b.type == "tool_use"]
    assert message.stop_reason == "tool_use"
    assert Order.model_validate(block.input).shipping.kind in Kind


def test_anthropic_stop_sequences_end_the_text(keel: Keel, client: openai.OpenAI) -> None:
    import anthropic

    full = client.chat.completions.create(model="mock", messages=USER, max_tokens=200)
    word = (full.choices[0].message.content or "").split(" ")[4]
    claude = anthropic.Anthropic(base_url=keel.url, api_key=keel.admin_key, max_retries=0)
    message = claude.messages.create(model="mock", max_tokens=200, messages=USER,
                                     stop_sequences=[word])
    text = "".join(b.text for b in message.content if b.type == "text")
    assert word not in text and (full.choices[0].message.content or "").startswith(text)
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", word)
