"""A stop sequence that ended the answer: ``/v1/messages`` says ``stop_reason:
"stop_sequence"`` and which one (plain and streamed), from an Anthropic upstream and from a
vLLM-style OpenAI-compatible one; ``/v1/chat/completions`` answers exactly OpenAI's shape."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import orjson
import pytest

from tests.gateway.conftest import Upstreams
from tests.support.keel import Keel

USER: Any = [{"role": "user", "content": "Count to ten."}]


def _anthropic(k: Keel) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=k.url, api_key=k.admin_key, max_retries=0)


def _claude_stops_at(fakes: Upstreams, sequence: str) -> None:
    fakes.anthropic.stop_reason, fakes.anthropic.stop_sequence = "stop_sequence", sequence


def _vllm_stops_at(fakes: Upstreams, sequence: str) -> None:
    fakes.openai.stop_reason = sequence


@pytest.mark.parametrize(("model", "script"), [("claude", _claude_stops_at),
                                               ("gpt", _vllm_stops_at)])
def test_messages_names_the_stop_sequence_that_ended_the_answer(
        keel_two: Keel, fakes: Upstreams, model: str, script: Any) -> None:
    script(fakes, "FIVE")
    c = _anthropic(keel_two)
    msg = c.messages.create(model=model, max_tokens=50, messages=USER,
                            stop_sequences=["FIVE", "TEN"])
    assert (msg.stop_reason, msg.stop_sequence) == ("stop_sequence", "FIVE")
    with c.messages.stream(model=model, max_tokens=50, messages=USER,
                           stop_sequences=["FIVE", "TEN"]) as stream:
        deltas = [e for e in stream if e.type == "message_delta"]
        final = stream.get_final_message()
    assert [(d.delta.stop_reason, d.delta.stop_sequence) for d in deltas] == [
        ("stop_sequence", "FIVE")]
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "FIVE")


def test_an_answer_that_ended_by_itself_is_end_turn(keel_two: Keel, fakes: Upstreams) -> None:
    fakes.openai.stop_reason = "FIVE"  # vLLM's field, but the request had no stop sequences
    msg = _anthropic(keel_two).messages.create(model="gpt", max_tokens=50, messages=USER)
    assert (msg.stop_reason, msg.stop_sequence) == ("end_turn", None)
    msg = _anthropic(keel_two).messages.create(model="claude", max_tokens=50, messages=USER,
                                               stop_sequences=["FIVE"])
    assert (msg.stop_reason, msg.stop_sequence) == ("end_turn", None)


def _post(k: Keel, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{k.base_url}/chat/completions", headers=k.admin_headers(), json=body)


@pytest.mark.parametrize(("model", "script"), [("claude", _claude_stops_at),
                                               ("gpt", _vllm_stops_at)])
def test_chat_completions_sends_no_internal_stop_sequence_key(
        keel_two: Keel, fakes: Upstreams, model: str, script: Any) -> None:
    script(fakes, "FIVE")
    body = {"model": model, "messages": USER, "stop": ["FIVE"]}
    choice = _post(keel_two, body).json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert "stop_sequence" not in choice
    r = _post(keel_two, {**body, "stream": True})
    chunks = [orjson.loads(line[6:]) for line in r.text.splitlines()
              if line.startswith("data: {")]
    assert [c["finish_reason"] for ch in chunks for c in ch["choices"]
            if c.get("finish_reason")] == ["stop"]
    assert not [c for ch in chunks for c in ch["choices"] if "stop_sequence" in c]
