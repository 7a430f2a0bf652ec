"""A fault-injecting OpenAI-compatible upstream, scripted per upstream model name.

``FaultUpstream.script(model, [...])`` queues actions consumed one per request (then
``ok``): ``ok``, ``slow:MS`` (latency spike, then ok), ``status:CODE`` or
``status:CODE:RETRY_AFTER``, ``hang`` (never answers), ``reset`` (connection dropped
mid-body), ``garbage``, ``filter`` (a content-filter refusal), and for streams
``stream_reset`` (a few chunks, then the connection drops).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


class FaultUpstream:
    def __init__(self, name: str = "up") -> None:
        self.name = name
        self.scripts: dict[str, deque[str]] = defaultdict(deque)
        self.seen: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    def script(self, model: str, actions: list[str]) -> None:
        self.scripts[model].extend(actions)

    def reset(self) -> None:
        self.scripts.clear()
        self.seen.clear()

    def count(self, model: str) -> int:
        return sum(1 for s in self.seen if s["model"] == model)

    async def chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        model = body["model"]
        queue = self.scripts[model]
        action = queue.popleft() if queue else "ok"
        self.seen.append({"model": model, "action": action, "time": time.monotonic(),
                          "stream": bool(body.get("stream"))})
        kind, _, arg = action.partition(":")
        if kind == "slow":
            await asyncio.sleep(float(arg) / 1000)
        elif kind == "status":
            code, _, retry_after = arg.partition(":")
            headers = {"retry-after": retry_after} if retry_after else None
            return Response(orjson.dumps({"error": {"message": f"injected {code}",
                                                    "type": "server_error"}}),
                            int(code), headers=headers, media_type="application/json")
        elif kind == "hang":
            await asyncio.sleep(3600)
        elif kind == "garbage":
            return Response(b"<html>oops</html>", 200, media_type="text/html")
        elif kind == "reset":
            return StreamingResponse(self._broken_json(), media_type="application/json")
        finish = "content_filter" if kind == "filter" else "stop"
        text = "" if kind == "filter" else f"answer from {self.name}/{model}"
        if body.get("stream"):
            return StreamingResponse(self._stream(model, text, finish, kind == "stream_reset"),
                                     media_type="text/event-stream")
        return Response(orjson.dumps({
            "id": "chatcmpl-f", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text or None},
                         "finish_reason": finish}],
            "usage": USAGE}), media_type="application/json")

    async def _broken_json(self) -> AsyncIterator[bytes]:
        yield b'{"id": "chatcmpl-f", "choices": ['
        await asyncio.sleep(0.01)
        raise ConnectionResetError("injected reset")

    async def _stream(self, model: str, text: str, finish: str, reset: bool
                      ) -> AsyncIterator[bytes]:
        base = {"id": "chatcmpl-f", "object": "chat.completion.chunk", "created": 1,
                "model": model}
        words = text.split(" ")
        for i, word in enumerate(words):
            delta = {"content": (" " if i else "") + word}
            if i == 0:
                delta["role"] = "assistant"
            yield b"data: " + orjson.dumps({**base, "choices": [
                {"index": 0, "delta": delta, "finish_reason": None}]}) + b"\n\n"
            if reset and i == 1:
                await asyncio.sleep(0.01)
                raise ConnectionResetError("injected reset mid-stream")
        yield b"data: " + orjson.dumps({**base, "choices": [
            {"index": 0, "delta": {}, "finish_reason": finish}]}) + b"\n\n"
        yield b"data: " + orjson.dumps({**base, "choices": [], "usage": USAGE}) + b"\n\n"
        yield b"data: [DONE]\n\n"
