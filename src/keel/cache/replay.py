"""Replay a cached ``chat.completion`` to a streaming client, and the inverse.

``completion_to_chunks`` yields the chunk shapes the provider adapters stream: per choice
a role chunk, the text in a few pieces, each tool call as a header chunk (index, id, type,
name) followed by its arguments in pieces, a ``finish_reason`` chunk; then one usage chunk
(``choices: []``). ``keel.streams.chunks_to_completion`` folds such a stream back into a
completion (the gateway's ``StreamAccumulator`` fold).
"""

from __future__ import annotations

from typing import Any

from keel.types import JSON

_MAX_PIECES = 8        # text is replayed in at most about this many chunks
_MIN_PIECE = 32        # characters; shorter texts go out in one chunk
_TEXT_FIELDS = ("reasoning_content", "content", "refusal")
_BASE_FIELDS = ("system_fingerprint", "service_tier")


def _split(text: str) -> list[str]:
    """Cut ``text`` into a few pieces before spaces; the pieces concatenate to ``text``."""
    if len(text) <= _MIN_PIECE:
        return [text] if text else []
    size = max(_MIN_PIECE, -(-len(text) // _MAX_PIECES))
    out: list[str] = []
    start = 0
    while start < len(text):
        end = start + size
        if end >= len(text):
            out.append(text[start:])
            break
        cut = text.find(" ", end)
        if cut == -1 or cut - end > size:
            cut = end  # no space nearby: cut inside the word
        out.append(text[start:cut])
        start = cut
    return out


def completion_to_chunks(completion: JSON) -> list[JSON]:
    """The ``chat.completion.chunk`` dicts that stream ``completion``."""
    base: JSON = {"id": completion.get("id"), "object": "chat.completion.chunk",
                  "created": completion.get("created"), "model": completion.get("model")}
    for name in _BASE_FIELDS:
        if completion.get(name) is not None:
            base[name] = completion[name]

    def chunk(index: int, delta: JSON, finish: str | None = None,
              logprobs: Any = None) -> JSON:
        return {**base, "choices": [{"index": index, "delta": delta, "logprobs": logprobs,
                                     "finish_reason": finish}]}

    out: list[JSON] = []
    for position, choice in enumerate(completion.get("choices") or ()):
        index = choice.get("index", position)
        msg = choice.get("message") or {}
        logprobs = choice.get("logprobs")
        content = msg.get("content")
        out.append(chunk(index, {"role": msg.get("role") or "assistant",
                                 "content": "" if isinstance(content, str) else None}))
        for field in _TEXT_FIELDS:
            value = msg.get(field)
            for piece in _split(value) if isinstance(value, str) else ():
                # All of a choice's logprobs ride on its first content piece.
                lp = logprobs if field == "content" and logprobs is not None else None
                out.append(chunk(index, {field: piece}, logprobs=lp))
                if lp is not None:
                    logprobs = None
        for call_index, call in enumerate(msg.get("tool_calls") or ()):
            fn = call.get("function") or {}
            out.append(chunk(index, {"tool_calls": [{
                "index": call_index, "id": call.get("id"), "type": call.get("type", "function"),
                "function": {"name": fn.get("name"), "arguments": ""}}]}))
            for piece in _split(fn.get("arguments") or ""):
                out.append(chunk(index, {"tool_calls": [{
                    "index": call_index, "function": {"arguments": piece}}]}))
        last = chunk(index, {}, choice.get("finish_reason"), logprobs)
        if choice.get("stop_sequence") is not None:  # keel-internal: the stop that ended it
            last["choices"][0]["stop_sequence"] = choice["stop_sequence"]
        out.append(last)
    if completion.get("usage") is not None:
        out.append({**base, "choices": [], "usage": completion["usage"]})
    return out
