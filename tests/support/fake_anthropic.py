"""A fake Anthropic Messages upstream speaking the real wire format (JSON and SSE).

It checks what the real API checks first (``x-api-key``, ``anthropic-version``,
``max_tokens``) and answers with text, or with a ``tool_use`` block when the request
offers tools and does not end with a tool result (the tool named by a ``tool`` choice
wins). Streams use ``event:`` lines, a ``ping`` and cache usage fields, like the real one.

Scripting per test: ``mode`` ``status`` (answer ``status`` with an Anthropic error body of
``error_type``, plus ``retry_after``), ``stream_error`` (an ``error`` event after the
first text delta), ``stream_error_first`` (an ``error`` event before ``message_start``),
``truncated`` (the stream ends without ``message_stop``). ``requests`` records each call.
``POST /v1/messages/count_tokens`` answers ``input_tokens``: the words of every text in the
request's messages and system, plus ``count_extra``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

API_KEY = "sk-ant-fake"


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None,
           ) -> Response:
    return Response(orjson.dumps({"type": "error", "error": {"type": kind, "message": message}}),
                    status, headers=headers, media_type="application/json")


class FakeAnthropic:
    def __init__(self) -> None:
        self.mode = "ok"  # ok | status | stream_error | stream_error_first | truncated
        self.status = 529
        self.error_type = "overloaded_error"
        self.error_message = "Overloaded"
        self.retry_after: str | None = None
        self.text = "Bonjour from the fake Claude."
        self.preamble = "Let me look that up."  # text before a tool_use block
        self.tool_input: dict[str, Any] = {"city": "Paris", "unit": "celsius"}
        self.stop_reason = "end_turn"
        self.stop_sequence: str | None = None
        self.usage = {"input_tokens": 20, "output_tokens": 9,
                      "cache_read_input_tokens": 100, "cache_creation_input_tokens": 30}
        self.requests: list[dict[str, Any]] = []
        self.url = ""  # set by whoever serves the app
        self.count_extra = 3
        self.app = Starlette(routes=[
            Route("/v1/messages", self.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
        ])

    def _content(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """The answer's content blocks and stop_reason."""
        tools = body.get("tools") or []
        last = body["messages"][-1]
        after_tool = isinstance(last.get("content"), list) and any(
            b.get("type") == "tool_result" for b in last["content"])
        choice = body.get("tool_choice") or {}
        if tools and not after_tool and choice.get("type") != "none":
            name = choice.get("name") or tools[0]["name"]
            blocks: list[dict[str, Any]] = [{"type": "text", "text": self.preamble}] \
                if choice.get("type") != "tool" else []
            blocks.append({"type": "tool_use", "id": "toolu_01A", "name": name,
                           "input": self.tool_input})
            return blocks, "tool_use"
        return [{"type": "text", "text": self.text}], self.stop_reason

    async def count_tokens(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append({"headers": dict(request.headers), "body": body,
                              "path": request.url.path})
        if request.headers.get("x-api-key") != API_KEY:
            return _error(401, "authentication_error", "invalid x-api-key")
        if "max_tokens" in body:
            return _error(400, "invalid_request_error", "max_tokens: Extra inputs are not "
                          "permitted")
        if self.mode == "status":
            return _error(self.status, self.error_type, self.error_message)
        texts = [body.get("system") if isinstance(body.get("system"), str) else ""]
        for m in body["messages"]:
            content = m["content"]
            texts += [content] if isinstance(content, str) else [
                b.get("text") or "" for b in content]
        words = sum(len(t.split()) for t in texts)
        return Response(orjson.dumps({"input_tokens": words + self.count_extra}),
                        media_type="application/json")

    async def messages(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append({"headers": dict(request.headers), "body": body})
        if request.headers.get("x-api-key") != API_KEY:
            return _error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        if not isinstance(body.get("max_tokens"), int):
            return _error(400, "invalid_request_error", "max_tokens: Field required")
        if self.mode == "status":
            headers = {"retry-after": self.retry_after} if self.retry_after else None
            return _error(self.status, self.error_type, self.error_message, headers)
        content, stop = self._content(body)
        if body.get("stream"):
            return StreamingResponse(self._stream(body, content, stop),
                                     media_type="text/event-stream")
        return Response(orjson.dumps({
            "id": "msg_01FAKE", "type": "message", "role": "assistant",
            "model": body["model"] + "-20250101", "content": content, "stop_reason": stop,
            "stop_sequence": self.stop_sequence if stop == "stop_sequence" else None,
            "usage": self.usage,
        }), media_type="application/json")

    async def _stream(self, body: dict[str, Any], content: list[dict[str, Any]], stop: str,
                      ) -> AsyncIterator[bytes]:
        if self.mode == "stream_error_first":
            yield _sse("error", {"type": "error", "error": {"type": self.error_type,
                                                            "message": self.error_message}})
            return
        start_usage = {**self.usage, "output_tokens": 1}
        yield _sse("message_start", {"type": "message_start", "message": {
            "id": "msg_01FAKE", "type": "message", "role": "assistant",
            "model": body["model"] + "-20250101", "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": start_usage}})
        for index, block in enumerate(content):
            if block["type"] == "text":
                yield _sse("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {"type": "text", "text": ""}})
                if index == 0:
                    yield _sse("ping", {"type": "ping"})
                words = block["text"].split(" ")
                for i, word in enumerate(words):
                    yield _sse("content_block_delta", {
                        "type": "content_block_delta", "index": index,
                        "delta": {"type": "text_delta", "text": (" " if i else "") + word}})
                    if self.mode == "stream_error":
                        yield _sse("error", {"type": "error", "error": {
                            "type": self.error_type, "message": self.error_message}})
                        return
            else:
                yield _sse("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {**block, "input": {}}})
                args = orjson.dumps(block["input"]).decode()
                for j in range(0, len(args), 7):
                    yield _sse("content_block_delta", {
                        "type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": args[j:j + 7]}})
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
        if self.mode == "truncated":
            return
        yield _sse("message_delta", {"type": "message_delta", "delta": {
            "stop_reason": stop,
            "stop_sequence": self.stop_sequence if stop == "stop_sequence" else None},
            "usage": {"output_tokens": self.usage["output_tokens"]}})
        yield _sse("message_stop", {"type": "message_stop"})
