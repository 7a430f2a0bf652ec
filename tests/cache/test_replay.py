"""Replaying a cached completion as a stream: the chunks reassemble to the original."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from keel.cache import completion_to_chunks
from keel.config import ProviderConfig
from keel.gateway.providers.mock import MockProvider
from keel.streams import chunks_to_completion
from keel.types import JSON

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "days": {"type": "integer"}}}}}]


@pytest.fixture
def mock() -> MockProvider:
    return MockProvider(ProviderConfig(name="mock", kind="mock", output_tokens=80))


def text_body(**extra: object) -> JSON:
    return {"model": "mock", "messages": [
        {"role": "user", "content": "How do I reset my password and my billing email?"}], **extra}


def tool_body() -> JSON:
    return {"model": "mock", "tools": TOOLS, "tool_choice": "required",
            "messages": [{"role": "user", "content": "What is the weather in Oslo?"}]}


def without_nulls(choices: list[JSON]) -> list[JSON]:
    """Choices with null message fields dropped (a stream never sends ``refusal: null``)."""
    return [{**c, "message": {k: v for k, v in c["message"].items() if v is not None}}
            for c in choices]


def sdk_final(chunks: list[JSON]) -> Any:
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for c in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(c))
    return state.get_final_completion()


async def test_text_completion_reassembles_exactly(mock: MockProvider) -> None:
    completion = (await mock.chat(text_body())).body
    original = copy.deepcopy(completion)
    chunks = completion_to_chunks(completion)
    assert completion == original  # not mutated
    content_chunks = [c for c in chunks if c["choices"] and "content" in c["choices"][0]["delta"]
                      and not c["choices"][0]["delta"].get("role")]
    assert 2 <= len(content_chunks) <= 9
    back = chunks_to_completion(chunks)
    assert without_nulls(back["choices"]) == without_nulls(completion["choices"])
    assert back["choices"][0]["message"]["content"] == completion["choices"][0]["message"]["content"]
    assert back["usage"] == completion["usage"]
    assert {k: back[k] for k in ("id", "created", "model", "system_fingerprint")} == \
        {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    assert chunks[-1] == {"id": completion["id"], "object": "chat.completion.chunk",
                          "created": completion["created"], "model": "mock",
                          "system_fingerprint": "keel-mock", "choices": [],
                          "usage": completion["usage"]}


async def test_tool_call_completion_reassembles_with_id_and_name_first(mock: MockProvider) -> None:
    completion = (await mock.chat(tool_body())).body
    call = completion["choices"][0]["message"]["tool_calls"][0]
    chunks = completion_to_chunks(completion)
    tool_deltas = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks
                   if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert tool_deltas[0] == {"index": 0, "id": call["id"], "type": "function",
                              "function": {"name": "get_weather", "arguments": ""}}
    assert all(set(d) == {"index", "function"} for d in tool_deltas[1:])
    assert "".join(d["function"]["arguments"] for d in tool_deltas) == call["function"]["arguments"]
    back = chunks_to_completion(chunks)
    assert back["choices"][0]["message"]["tool_calls"] == [call]
    assert back["choices"][0]["message"]["content"] is None
    assert back["choices"][0]["finish_reason"] == "tool_calls"
    assert back["usage"] == completion["usage"]


async def test_several_choices_reassemble_in_order(mock: MockProvider) -> None:
    completion = (await mock.chat(text_body(n=3))).body
    back = chunks_to_completion(completion_to_chunks(completion))
    assert [c["message"]["content"] for c in back["choices"]] == \
        [c["message"]["content"] for c in completion["choices"]]
    assert [c["index"] for c in back["choices"]] == [0, 1, 2]


async def test_openai_sdk_accumulates_the_replay_to_the_original(mock: MockProvider) -> None:
    text = (await mock.chat(text_body())).body
    final = sdk_final(completion_to_chunks(text))
    assert final.choices[0].message.content == text["choices"][0]["message"]["content"]
    assert final.usage.model_dump(exclude_none=True) == text["usage"]

    tool = (await mock.chat(tool_body())).body
    final = sdk_final(completion_to_chunks(tool))
    calls = final.choices[0].message.tool_calls
    want = tool["choices"][0]["message"]["tool_calls"][0]
    assert (calls[0].id, calls[0].function.name, calls[0].function.arguments) == \
        (want["id"], "get_weather", want["function"]["arguments"])


async def test_replay_chunks_have_the_shapes_the_mock_provider_streams(mock: MockProvider) -> None:
    def shapes(chunks: list[JSON]) -> set[tuple[Any, ...]]:
        out: set[tuple[Any, ...]] = set()
        for c in chunks:
            choices = c["choices"]
            assert isinstance(choices, list)
            out.add((tuple(sorted(c)), tuple(sorted(choices[0])) if choices else (),
                     tuple(sorted(choices[0]["delta"])) if choices else ()))
        return out

    for body in (text_body(), tool_body()):
        streamed = [c async for c in mock.chat_stream(body)]
        replayed = completion_to_chunks((await mock.chat(body)).body)
        assert shapes(replayed) == shapes(streamed)


def test_short_text_is_one_piece_and_pieces_keep_every_character() -> None:
    def completion(text: str) -> JSON:
        return {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": text}}]}

    short = completion_to_chunks(completion("Hi there."))
    assert [c["choices"][0]["delta"] for c in short] == [
        {"role": "assistant", "content": ""}, {"content": "Hi there."}, {}]
    odd = "word " * 40 + "x" * 300 + "  trailing\nnewline "
    pieces = [c["choices"][0]["delta"]["content"] for c in completion_to_chunks(completion(odd))
              if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert "".join(pieces) == odd and len(pieces) > 1
    # no usage in the completion: no usage chunk
    assert all(c["choices"] for c in short)


def test_logprobs_and_refusal_survive_the_replay() -> None:
    logprobs = {"content": [{"token": "No", "logprob": -0.1, "bytes": [78], "top_logprobs": []}],
                "refusal": None}
    completion: JSON = {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
                                     "message": {"role": "assistant", "content": "No",
                                                 "refusal": "I can't help with that."}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    back = chunks_to_completion(completion_to_chunks(completion))
    assert back["choices"][0]["message"] == completion["choices"][0]["message"]
    assert back["choices"][0]["logprobs"] == {"content": logprobs["content"]}


def test_the_stop_sequence_that_ended_a_choice_rides_on_its_last_chunk() -> None:
    # keel-internal: /v1/messages answers stop_reason "stop_sequence" from it, so a cached or
    # held answer replayed as a stream must keep it.
    completion = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                  "choices": [{"index": 0, "finish_reason": "stop", "stop_sequence": "END",
                               "message": {"role": "assistant", "content": "one two"}},
                              {"index": 1, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": "three"}}]}
    chunks = completion_to_chunks(completion)
    last = {c["choices"][0]["index"]: c["choices"][0] for c in chunks
            if c["choices"] and c["choices"][0]["finish_reason"]}
    assert last[0]["stop_sequence"] == "END"
    assert "stop_sequence" not in last[1]
    folded = chunks_to_completion(chunks)["choices"]
    assert folded[0]["stop_sequence"] == "END" and "stop_sequence" not in folded[1]
