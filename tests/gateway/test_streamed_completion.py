"""A streamed answer is stored on the trace and in the cache as the whole completion it
amounts to: refusal, reasoning, logprobs and system fingerprint included."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from keel.streams import chunks_to_completion
from tests.support.keel import Keel, running_keel
from tests.support.servers import serve

Q = [{"role": "user", "content": "Help me pick a lock."}]
REFUSAL = ["I can't help ", "with picking locks."]
REASONING = ["The user asks about ", "defeating a lock; decline."]
REFUSAL_LOGPROBS = [[{"token": "I", "logprob": -0.01, "bytes": [73], "top_logprobs": []}],
                    [{"token": " can't", "logprob": -0.2, "bytes": None, "top_logprobs": []}]]
USAGE = {"prompt_tokens": 9, "completion_tokens": 14, "total_tokens": 23,
         "completion_tokens_details": {"reasoning_tokens": 8, "audio_tokens": 0}}


def upstream_chunks(model: str) -> list[dict[str, Any]]:
    """A reasoning model's refusal, streamed the way OpenAI-compatible upstreams do."""
    base = {"id": "chatcmpl-refuse", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model, "system_fingerprint": "fp_fake123"}

    def chunk(delta: dict[str, Any], logprobs: Any = None, finish: str | None = None
              ) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": logprobs,
                                     "finish_reason": finish}]}

    return [chunk({"role": "assistant", "content": None, "refusal": ""}),
            *(chunk({"reasoning_content": piece}) for piece in REASONING),
            *(chunk({"refusal": piece}, {"content": None, "refusal": lp})
              for piece, lp in zip(REFUSAL, REFUSAL_LOGPROBS, strict=True)),
            chunk({}, finish="stop"),
            {**base, "choices": [], "usage": USAGE}]


async def _chat(request: Request) -> StreamingResponse:
    body = orjson.loads(await request.body())
    assert body.get("stream"), "this upstream only streams"

    async def events() -> AsyncIterator[bytes]:
        for c in upstream_chunks(body["model"]):
            yield b"data: " + orjson.dumps(c) + b"\n\n"
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture
def keel(tmp_path: Path) -> Iterator[Keel]:
    with serve(Starlette(routes=[Route("/v1/chat/completions", _chat, methods=["POST"])])) as up:
        config = {
            "providers": [{"name": "mock", "kind": "mock"},
                          {"name": "up", "kind": "openai", "api_key": "sk-fake-upstream-0123",
                           "base_url": up.url + "/v1"}],
            "models": [{"name": "mock", "provider": "mock"},
                       {"name": "reasoner", "provider": "up", "upstream": "reasoner-up"}],
            "routes": [{"name": "cached", "targets": [{"model": "reasoner"}],
                        "cache": {"ttl_s": 60}}],
        }
        with running_keel(tmp_path, config) as k:
            yield k


def post(k: Keel, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(k.base_url + "/chat/completions", json=body, headers=k.admin_headers(),
                      timeout=20)


def stream(k: Keel, body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The trace id and the chunks of a streamed answer."""
    chunks: list[dict[str, Any]] = []
    with httpx.stream("POST", k.base_url + "/chat/completions", json={**body, "stream": True},
                      headers=k.admin_headers(), timeout=20) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(orjson.loads(line[len("data: "):]))
        return r.headers["x-keel-trace-id"], chunks


def stored_trace(k: Keel, trace_id: str) -> dict[str, Any]:
    k.flush()
    r = httpx.get(f"{k.url}/api/traces/{trace_id}", headers=k.admin_headers())
    assert r.status_code == 200, r.text
    return dict(r.json())


WANT_MESSAGE = {"role": "assistant", "content": None, "refusal": "".join(REFUSAL),
                "reasoning_content": "".join(REASONING)}
WANT_LOGPROBS = {"refusal": REFUSAL_LOGPROBS[0] + REFUSAL_LOGPROBS[1]}


def test_a_streamed_refusal_is_traced_cached_and_replayed_with_its_text(keel: Keel) -> None:
    trace_id, chunks = stream(keel, {"model": "cached", "messages": Q})
    assert "".join(c["choices"][0]["delta"].get("refusal") or "" for c in chunks
                   if c["choices"]) == "".join(REFUSAL)

    stored = stored_trace(keel, trace_id)["response"]
    assert stored["choices"][0]["message"] == WANT_MESSAGE
    assert stored["choices"][0]["logprobs"] == WANT_LOGPROBS
    assert stored["choices"][0]["finish_reason"] == "stop"
    assert stored["system_fingerprint"] == "fp_fake123"
    assert stored["usage"] == USAGE  # as the upstream reported it, details included

    keel.run(keel.state.gateway.drain())  # the cache write runs after the response
    hit = post(keel, {"model": "cached", "messages": Q})
    assert hit.status_code == 200, hit.text
    assert stored_trace(keel, hit.headers["x-keel-trace-id"])["cache_hit"] is True
    cached = hit.json()
    assert cached["choices"][0]["message"] == WANT_MESSAGE
    assert cached["choices"][0]["logprobs"] == WANT_LOGPROBS
    assert cached["system_fingerprint"] == "fp_fake123"

    replay_id, replayed = stream(keel, {"model": "cached", "messages": Q})
    assert stored_trace(keel, replay_id)["cache_hit"] is True
    assert "".join(c["choices"][0]["delta"].get("refusal") or "" for c in replayed
                   if c["choices"]) == "".join(REFUSAL)
    folded = chunks_to_completion(replayed)
    assert folded["choices"][0]["message"] == WANT_MESSAGE
    assert folded["choices"][0]["logprobs"] == WANT_LOGPROBS
    assert folded["system_fingerprint"] == "fp_fake123"


def test_a_streamed_mock_answer_is_stored_as_the_plain_answer_with_its_logprobs(
        keel: Keel) -> None:
    body = {"model": "mock", "messages": Q, "logprobs": True, "top_logprobs": 2, "n": 2,
            "seed": 7}
    plain = post(keel, body).json()
    trace_id, _ = stream(keel, body)
    stored = stored_trace(keel, trace_id)["response"]

    def without_nulls(message: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in message.items() if v is not None}

    assert [c["index"] for c in stored["choices"]] == [0, 1]
    for got, want in zip(stored["choices"], plain["choices"], strict=True):
        assert without_nulls(got["message"]) == without_nulls(want["message"])
        assert got["logprobs"]["content"] == want["logprobs"]["content"]
        assert len(got["logprobs"]["content"]) > 1
        assert got["finish_reason"] == want["finish_reason"]
    assert stored["system_fingerprint"] == plain["system_fingerprint"] == "keel-mock"
