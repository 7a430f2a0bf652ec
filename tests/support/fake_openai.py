"""A fake OpenAI-compatible upstream that speaks the real wire format (JSON and SSE).

Behaviour is scripted per test through ``FakeOpenAI.mode`` and friends: a normal answer,
an error status with OpenAI's error body, a garbage body, a hang, or a stream that
breaks off half way. Every received request is kept in ``requests`` for assertions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


class FakeOpenAI:
    def __init__(self) -> None:
        self.mode = "ok"  # ok | status | garbage | hang | break_stream | json_on_stream
        self.status = 500
        self.error_body: dict[str, Any] = {"error": {"message": "boom", "type": "server_error",
                                                     "param": None, "code": None}}
        self.retry_after: str | None = None
        # the error object a ``break_stream`` stream sends half way
        self.stream_error: dict[str, Any] = {"message": "upstream overloaded",
                                             "type": "server_error"}
        self.hang_s = 30.0
        self.text = "Hello from the fake upstream."
        self.usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
                      "prompt_tokens_details": {"cached_tokens": 4},
                      "completion_tokens_details": {"reasoning_tokens": 2}}
        self.requests: list[dict[str, Any]] = []
        # vLLM's extension: the stop string that ended the answer, in ``choices[i].stop_reason``
        self.stop_reason: str | None = None
        # Optional: body -> answer text (per request), for tests whose answers depend on
        # what was asked (eval targets, judges).
        self.responder: Callable[[dict[str, Any]], str] | None = None
        # Optional: input text -> embedding (default [0.1, 0.2, 0.3] for every input).
        self.vector_for: Callable[[str], list[float]] | None = None
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/openai/deployments/{dep}/chat/completions", self.chat, methods=["POST"]),
        ])

    async def _common(self, request: Request) -> Response | None:
        body = orjson.loads(await request.body())
        self.requests.append({"path": request.url.path, "query": dict(request.query_params),
                              "headers": dict(request.headers), "body": body})
        if self.mode == "status":
            headers = {"retry-after": self.retry_after} if self.retry_after else None
            return Response(orjson.dumps(self.error_body), self.status, headers=headers,
                            media_type="application/json")
        if self.mode == "garbage":
            return Response(b"<html>502 Bad Gateway</html>", 200, media_type="text/html")
        if self.mode == "hang":
            await asyncio.sleep(self.hang_s)
        return None

    async def chat(self, request: Request) -> Response:
        early = await self._common(request)
        if early is not None:
            return early
        body = self.requests[-1]["body"]
        if body.get("stream"):
            if self.mode == "json_on_stream":
                return Response(orjson.dumps(self.error_body), 200,
                                media_type="application/json")
            return StreamingResponse(self._stream(body), media_type="text/event-stream")
        text = self.responder(body) if self.responder is not None else self.text
        message: dict[str, Any] = {"role": "assistant", "content": text}
        finish = "stop"
        if body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": name, "arguments": '{"city": "Paris"}'}}]}
            finish = "tool_calls"
        choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
        if self.stop_reason is not None:
            choice["stop_reason"] = self.stop_reason
        return Response(orjson.dumps({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"] + "-2024", "choices": [choice], "usage": self.usage,
        }), media_type="application/json")

    async def _stream(self, body: dict[str, Any]) -> AsyncIterator[bytes]:
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
                "model": body["model"] + "-2024"}
        words = self.text.split(" ")
        yield b"data: " + orjson.dumps({**base, "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""},
             "finish_reason": None}]}) + b"\n\n"
        for i, w in enumerate(words):
            if self.mode == "break_stream" and i == len(words) // 2:
                yield b"data: " + orjson.dumps({"error": self.stream_error}) + b"\n\n"
                return
            yield b"data: " + orjson.dumps({**base, "choices": [
                {"index": 0, "delta": {"content": (" " if i else "") + w},
                 "finish_reason": None}]}) + b"\n\n"
        last: dict[str, Any] = {"index": 0, "delta": {}, "finish_reason": "stop"}
        if self.stop_reason is not None:
            last["stop_reason"] = self.stop_reason
        yield b"data: " + orjson.dumps({**base, "choices": [last]}) + b"\n\n"
        if (body.get("stream_options") or {}).get("include_usage"):
            yield b"data: " + orjson.dumps({**base, "choices": [], "usage": self.usage}) + b"\n\n"
        yield b"data: [DONE]\n\n"

    async def embeddings(self, request: Request) -> Response:
        early = await self._common(request)
        if early is not None:
            return early
        body = self.requests[-1]["body"]
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return Response(orjson.dumps({
            "object": "list", "model": body["model"],
            "data": [{"object": "embedding", "index": i,
                      "embedding": self.vector_for(text) if self.vector_for is not None
                      else [0.1, 0.2, 0.3]}
                     for i, text in enumerate(inputs)],
            "usage": {"prompt_tokens": 5, "total_tokens": 5},
        }), media_type="application/json")
