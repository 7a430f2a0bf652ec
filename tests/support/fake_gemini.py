"""A fake Gemini API (``v1beta``) that speaks the real wire format: JSON, and SSE for
``streamGenerateContent?alt=sse``.

Tests script it through attributes: ``parts`` (the answer's content parts),
``finish_reason``, ``usage``, ``fail(...)`` for Google-style error bodies, and ``mode``
for a prompt block or a stream that is cut off or ends early. Every request is recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

API_KEY = "test-gemini-key"
MODEL_VERSION = "gemini-2.5-flash-001"


class StreamCut(Exception):
    """Raised inside the streaming body: uvicorn drops the connection mid-response."""


class FakeGemini:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1beta/{resource:path}", self.dispatch,
                                           methods=["POST"])])
        self.reset()

    def reset(self) -> None:
        self.requests.clear()
        self.mode = "ok"  # ok | error | blocked | cut_stream | early_end | error_event
        self.parts: list[dict[str, Any]] = [{"text": "Hello from the fake Gemini."}]
        self.finish_reason = "STOP"
        self.usage: dict[str, Any] = {"promptTokenCount": 20, "candidatesTokenCount": 8,
                                      "totalTokenCount": 28}
        self.error_status = 500
        self.error_body: Any = None
        self.embedding_usage: dict[str, Any] | None = None

    def fail(self, status: int, grpc_status: str, message: str, *, wrap: bool = False) -> None:
        """Answer every request with a Google API error body (optionally wrapped in a list)."""
        body = {"error": {"code": status, "message": message, "status": grpc_status}}
        self.mode, self.error_status = "error", status
        self.error_body = [body] if wrap else body

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]

    @staticmethod
    def _json(data: Any, status: int = 200) -> Response:
        return Response(orjson.dumps(data), status, media_type="application/json")

    async def dispatch(self, request: Request) -> Response:
        resource = request.path_params["resource"]
        name, _, method = resource.rpartition(":")
        body = orjson.loads(await request.body())
        self.requests.append({"path": request.url.path, "model": name, "method": method,
                              "query": dict(request.query_params),
                              "headers": dict(request.headers), "body": body})
        if request.headers.get("x-goog-api-key") != API_KEY:
            return self._json({"error": {
                "code": 400, "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT"}}, 400)
        if self.mode == "error":
            return self._json(self.error_body, self.error_status)
        if method == "generateContent":
            return self._json(self._response(self.parts, self.finish_reason, self.usage))
        if method == "streamGenerateContent":
            if request.query_params.get("alt") != "sse":
                return self._json({"error": {"code": 400, "message": "this fake wants alt=sse",
                                             "status": "INVALID_ARGUMENT"}}, 400)
            return StreamingResponse(self._stream(), media_type="text/event-stream")
        if method == "batchEmbedContents":
            return self._json(self._embed(body))
        return self._json({"error": {"code": 404, "message": f"unknown method {method}",
                                     "status": "NOT_FOUND"}}, 404)

    def _response(self, parts: list[dict[str, Any]], finish: str | None,
                  usage: dict[str, Any]) -> dict[str, Any]:
        if self.mode == "blocked":
            return {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
                    "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
                    "modelVersion": MODEL_VERSION, "responseId": "resp-blocked"}
        candidate: dict[str, Any] = {"index": 0}
        if parts:
            candidate["content"] = {"role": "model", "parts": parts}
        if finish:
            candidate["finishReason"] = finish
        return {"candidates": [candidate], "usageMetadata": usage,
                "modelVersion": MODEL_VERSION, "responseId": "resp-123"}

    def _pieces(self) -> list[dict[str, Any]]:
        """The answer split the way Gemini streams it: text in word groups, calls whole."""
        pieces: list[dict[str, Any]] = []
        for part in self.parts:
            if "text" in part and not part.get("thought"):
                words = part["text"].split(" ")
                pieces.extend({"text": (" " if i else "") + w} for i, w in enumerate(words))
            else:
                pieces.append(part)
        return pieces

    async def _stream(self) -> AsyncIterator[bytes]:
        pieces = self._pieces()
        partial = {"promptTokenCount": self.usage.get("promptTokenCount", 0),
                   "totalTokenCount": self.usage.get("promptTokenCount", 0)}
        if self.mode == "blocked":
            yield b"data: " + orjson.dumps(self._response([], None, {})) + b"\r\n\r\n"
            return
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            if i == len(pieces) // 2 and i:
                if self.mode == "cut_stream":
                    raise StreamCut("connection dropped by the fake")
                if self.mode == "error_event":
                    yield b'data: {"error": {"code": 503, "message": "The model is overloaded.",' \
                          b' "status": "UNAVAILABLE"}}\r\n\r\n'
                    return
            if last and self.mode == "early_end":
                return
            event = self._response([piece], self.finish_reason if last else None,
                                   self.usage if last else partial)
            yield b"data: " + orjson.dumps(event) + b"\r\n\r\n"

    def _embed(self, body: dict[str, Any]) -> dict[str, Any]:
        out = []
        for req in body["requests"]:
            text = req["content"]["parts"][0]["text"]
            dims = req.get("outputDimensionality") or 4
            out.append({"values": [round((len(text) + k) / 100, 4) for k in range(dims)]})
        data: dict[str, Any] = {"embeddings": out}
        if self.embedding_usage:
            data["usageMetadata"] = self.embedding_usage
        return data
