"""An answer keel has nothing to change in is sent as the bytes the OpenAI-compatible upstream
sent (formatting, escapes and all), plain and streamed; where keel does change it (a stop
sequence it marks, usage the client did not ask for, a guard's redaction) the client gets
keel's serialisation. Either way the trace stores the parsed answer and its usage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from keel.server.openai_api import _without_null_usage
from tests.support.keel import Keel, running_keel
from tests.support.servers import serve

Q = [{"role": "user", "content": "Say something."}]

# Not how orjson writes it: spaces, a line break, \u escapes, an exponent, a vendor field.
ANSWER = (b'{"id": "chatcmpl-raw", "object": "chat.completion", "created": 1700000000,\n'
          b' "model": "raw-up-2024", "choices": [{"index": 0, "message": {"role": "assistant",'
          b' "content": "caf\\u00e9 \\ud83d\\ude00 costs 1.50e2 or write to a@corp.example"},'
          b' "finish_reason": "stop", "stop_reason": "END", "logprobs": null}],'
          b' "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},'
          b' "x_vendor": 1.0}')

# Chunk data as upstreams send them once usage is asked for: "usage":null on every chunk.
CHUNKS = [
    b'{"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "raw-up",'
    b' "choices": [{"index": 0, "delta": {"role": "assistant", "content": "caf\\u00e9"},'
    b' "finish_reason": null}]}',
    b'{"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"raw-up",'
    b'"choices":[{"index":0,"delta":{"content":" au lait"},"finish_reason":null}],'
    b'"usage":null}',
    b'{"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"raw-up",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}], "usage": null}',
    b'{"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"raw-up",'
    b'"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}',
]


async def _chat(request: Request) -> Response:
    body = orjson.loads(await request.body())
    if not body.get("stream"):
        return Response(ANSWER, media_type="application/json")

    async def events() -> AsyncIterator[bytes]:
        for data in CHUNKS:
            yield b"data: " + data + b"\n\n"
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture(scope="module")
def keel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keel]:
    with serve(Starlette(routes=[Route("/v1/chat/completions", _chat, methods=["POST"])])) as up:
        config = {
            "providers": [{"name": "up", "kind": "openai", "api_key": "sk-raw-upstream-0123",
                           "base_url": up.url + "/v1"}],
            "models": [{"name": "raw", "provider": "up", "upstream": "raw-up",
                        "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}],
            "policies": [{"name": "scrub", "features": ["scrubbed"],
                          "output": [{"scanner": "pii", "action": "redact"}]}],
        }
        with running_keel(tmp_path_factory.mktemp("keel"), config) as k:
            yield k


def post(k: Keel, body: dict[str, Any], **headers: str) -> httpx.Response:
    r = httpx.post(k.base_url + "/chat/completions", json={"model": "raw", "messages": Q, **body},
                   headers={**k.admin_headers(), **headers}, timeout=20)
    assert r.status_code == 200, r.text
    return r


def events(r: httpx.Response) -> list[bytes]:
    return [e[len(b"data: "):] for e in r.content.split(b"\n\n") if e]


def stored(k: Keel, r: httpx.Response) -> dict[str, Any]:
    k.flush()
    got = httpx.get(f"{k.url}/api/traces/{r.headers['x-keel-trace-id']}",
                    headers=k.admin_headers())
    assert got.status_code == 200, got.text
    return dict(got.json())


def test_an_answer_keel_does_not_change_is_sent_as_the_upstreams_bytes(keel: Keel) -> None:
    r = post(keel, {})
    assert r.content == ANSWER
    assert r.headers["content-type"] == "application/json"
    trace = stored(keel, r)
    assert trace["response"] == orjson.loads(ANSWER)
    assert (trace["input_tokens"], trace["output_tokens"]) == (5, 3)
    assert trace["cost_usd"] == pytest.approx((5 * 1.0 + 3 * 2.0) / 1e6)


def test_an_answer_with_a_stop_sequence_keel_marked_is_sent_as_openai_shapes_it(
        keel: Keel) -> None:
    r = post(keel, {"stop": ["END"]})
    assert r.json() == orjson.loads(ANSWER)  # keel's internal key is not sent
    assert stored(keel, r)["response"]["choices"][0]["stop_sequence"] == "END"


def test_a_redacted_answer_is_never_sent_as_the_upstreams_bytes(keel: Keel) -> None:
    for body in ({}, {"stream": True}):
        r = post(keel, body, **{"x-keel-feature": "scrubbed"})
        assert b"a@corp.example" not in r.content and b"[REDACTED_EMAIL]" in r.content


def test_a_stream_is_sent_as_the_upstreams_chunks_when_the_client_asks_for_usage(
        keel: Keel) -> None:
    r = post(keel, {"stream": True, "stream_options": {"include_usage": True}})
    assert events(r) == [*CHUNKS, b"[DONE]"]


def test_a_stream_drops_the_usage_keel_asked_for_and_keeps_the_rest_as_sent(
        keel: Keel) -> None:
    r = post(keel, {"stream": True})
    got = events(r)
    assert got[0] == CHUNKS[0]
    assert got[1] == CHUNKS[1].removesuffix(b',"usage":null}') + b"}"
    # written with a space: not cut out of the bytes but serialised again, without usage
    assert orjson.loads(got[2]) == {k: v for k, v in orjson.loads(CHUNKS[2]).items()
                                    if k != "usage"}
    assert got[3:] == [b"[DONE]"]  # the usage-only chunk is not the client's
    trace = stored(keel, r)
    assert trace["response"]["choices"][0]["message"]["content"] == "café au lait"
    assert (trace["input_tokens"], trace["output_tokens"]) == (4, 2)


@pytest.mark.parametrize("raw", [
    b'{"usage":null}',  # the only member: no comma before it
    b'{"a":1,"usage":null} ',  # not the end of the text
    b'{"a":{"usage":1},"usage":null}',  # another "usage" in the text
    b'{"a":1, "usage":null}'.replace(b'"usage":', b'"usage": '),  # not compact
])
def test_null_usage_is_cut_from_the_bytes_only_where_that_is_certain(raw: bytes) -> None:
    assert _without_null_usage(raw, orjson.loads(raw)) is None


def test_null_usage_is_cut_from_the_end_of_compact_bytes() -> None:
    raw = b'{"a":[1,{"b":"}"}],"usage":null}'
    cut = _without_null_usage(raw, orjson.loads(raw))
    assert cut == b'{"a":[1,{"b":"}"}]}' and orjson.loads(cut) == {"a": [1, {"b": "}"}]}
    assert _without_null_usage(None, orjson.loads(raw)) is None
    assert _without_null_usage(b'{"usage":{},"a":1}', {"usage": {}, "a": 1}) is None
