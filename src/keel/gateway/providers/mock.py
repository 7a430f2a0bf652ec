"""The built-in offline provider: deterministic, no network, tunable latency and failures.

The same input always yields the same answer (text derived from a hash of the
messages and ``seed``), so demos, tests and evals are repeatable. Latency follows a
log-normal distribution given by its median and p99; failures (429, 500, timeout) occur
at configured rates. Tools, ``response_format`` JSON, ``n``, ``stop`` and
``max_tokens`` are honoured so clients see realistic shapes.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from keel.config import ProviderConfig
from keel.errors import UpstreamError, UpstreamRateLimited, UpstreamTimeout
from keel.gateway.providers.base import Provider, register_provider
from keel.gateway.tokens import content_text, estimate_messages, estimate_text
from keel.types import JSON, ChatResult, EmbeddingResult, Usage

_OPENERS = (
    "Thanks for asking about {topic}.",
    "Here is what usually helps with {topic}.",
    "Good question about {topic}.",
)
_SENTENCES = (
    "First, check the settings that relate to {kw}.",
    "Then confirm that the {kw} details on the account are up to date.",
    "If the problem continues, review the most recent changes and try again.",
    "Most {kw} issues are resolved within a few minutes this way.",
    "It also helps to note when the issue started and what changed just before.",
    "In short, {topic} depends on the account state and the options chosen.",
    "The logs usually show whether {kw} was applied as expected.",
    "Let me know if you would like more detail on any of these steps.",
)
_STOPWORDS = frozenset((
    "what", "when", "where", "which", "with", "that", "this", "have", "does", "from", "your",
    "about", "could", "would", "should", "there", "their", "they", "them", "into", "please",
    "tell",
))
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9'-]{3,}")


def _digest(*parts: Any) -> bytes:
    return hashlib.blake2b(orjson.dumps(parts, default=str), digest_size=16).digest()


@register_provider("mock")
class MockProvider(Provider):
    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._rng = random.Random(config.seed)
        lat = config.latency
        self._median_s = lat.p50_ms / 1000.0
        p99 = lat.p99_ms if lat.p99_ms is not None else lat.p50_ms
        self._sigma = math.log(p99 / lat.p50_ms) / 2.326 if lat.p50_ms > 0 and p99 > 0 else 0.0

    # --- behaviour knobs -------------------------------------------------------------------

    def _latency(self) -> float:
        if self._median_s <= 0:
            return 0.0
        if self._sigma <= 0:
            return self._median_s
        return float(self._median_s * math.exp(self._rng.gauss(0.0, self._sigma)))

    async def _maybe_fail(self) -> None:
        errs = self.config.errors
        roll = self._rng.random()
        if roll < errs.rate_limit:
            raise UpstreamRateLimited(
                f"provider '{self.name}' is rate limiting (429): mock rate limit",
                headers={"retry-after": "1"},
            )
        roll -= errs.rate_limit
        if roll < errs.server_error:
            raise UpstreamError(f"provider '{self.name}' failed (500): mock server error")
        roll -= errs.server_error
        if roll < errs.timeout:
            await asyncio.sleep(self.config.timeout_s)
            raise UpstreamTimeout(
                f"provider '{self.name}' did not answer within {self.config.timeout_s:g}s"
            )

    # --- content -----------------------------------------------------------------------------

    def _text(self, body: JSON, index: int) -> str:
        messages = body.get("messages") or []
        last_user = ""
        for m in reversed(messages):
            if isinstance(m, dict) and m.get("role") == "user":
                last_user = content_text(m.get("content"))
                break
        seed = _digest(messages, body.get("seed"), index)
        rng = random.Random(seed)
        keywords = [w for w in dict.fromkeys(w.lower() for w in _WORD_RE.findall(last_user))
                    if w not in _STOPWORDS][:3] or ["your request"]
        topic = " and ".join(keywords[:2])
        target = max(4, int(self.config.output_tokens * (0.6 + 0.8 * rng.random())))
        parts = [rng.choice(_OPENERS).format(topic=topic)]
        while estimate_text(" ".join(parts)) < target:
            parts.append(rng.choice(_SENTENCES).format(topic=topic, kw=rng.choice(keywords)))
        text = " ".join(parts)
        return text[0].upper() + text[1:]

    def _tool_call(self, body: JSON, index: int) -> JSON | None:
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("function")]
        choice = body.get("tool_choice")
        if not tools or choice == "none":
            return None
        messages = body.get("messages") or []
        if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "tool":
            return None  # a tool result came back: answer in text
        chosen = None
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            chosen = next((t for t in tools if t["function"].get("name") == name), None)
        elif choice == "required":
            chosen = tools[0]
        else:
            last = content_text(messages[-1].get("content")).lower() if messages else ""
            for t in tools:
                name = str(t["function"].get("name", ""))
                if name and (name.lower() in last or name.replace("_", " ").lower() in last):
                    chosen = t
                    break
        if chosen is None:
            return None
        fn = chosen["function"]
        args = _example_for_schema(fn.get("parameters") or {}, body)
        call_id = "call_" + _digest(messages, fn.get("name"), index).hex()[:24]
        return {"id": call_id, "type": "function",
                "function": {"name": fn.get("name"), "arguments": orjson.dumps(args).decode()}}

    def _choice(self, body: JSON, index: int) -> tuple[JSON, int]:
        call = self._tool_call(body, index)
        if call is not None:
            out_tokens = estimate_text(call["function"]["arguments"]) + 8
            return {"index": index, "finish_reason": "tool_calls", "logprobs": None,
                    "message": {"role": "assistant", "content": None, "tool_calls": [call]}}, \
                out_tokens
        fmt = body.get("response_format") or {}
        text = self._text(body, index)
        if fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema") or {}
            text = orjson.dumps(_example_for_schema(schema, body, text)).decode()
        elif fmt.get("type") == "json_object":
            text = orjson.dumps({"answer": text}).decode()
        finish = "stop"
        stops = body.get("stop")
        for s in [stops] if isinstance(stops, str) else (stops or []):
            if s and s in text:
                text = text[: text.index(s)]
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit and estimate_text(text) > limit:
            text = text[: int(limit) * 4]
            finish = "length"
        return {"index": index, "finish_reason": finish, "logprobs": None,
                "message": {"role": "assistant", "content": text, "refusal": None}}, \
            estimate_text(text)

    def _completion(self, body: JSON) -> tuple[JSON, Usage]:
        n = int(body.get("n") or 1)
        choices, out_tokens = [], 0
        for i in range(n):
            choice, tokens = self._choice(body, i)
            choices.append(choice)
            out_tokens += tokens
        usage = Usage(input_tokens=estimate_messages(body.get("messages") or []),
                      output_tokens=out_tokens)
        completion = {
            "id": "chatcmpl-" + _digest(body.get("messages"), body.get("seed")).hex()[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "keel-mock",
            "choices": choices,
            "usage": usage.to_openai(),
        }
        return completion, usage

    # --- Provider ----------------------------------------------------------------------------

    async def chat(self, body: JSON) -> ChatResult:
        await self._maybe_fail()
        delay = self._latency()
        if delay:
            await asyncio.sleep(delay)
        completion, usage = self._completion(body)
        return ChatResult(body=completion, usage=usage, served_model=body["model"])

    async def chat_stream(self, body: JSON) -> AsyncIterator[JSON]:
        await self._maybe_fail()
        completion, usage = self._completion(body)
        total = self._latency()
        ttft = (self.config.latency.ttft_ms / 1000.0 if self.config.latency.ttft_ms is not None
                else total * 0.2)
        if ttft:
            await asyncio.sleep(ttft)
        base = {"id": completion["id"], "object": "chat.completion.chunk",
                "created": completion["created"], "model": body["model"],
                "system_fingerprint": "keel-mock"}
        pieces: list[tuple[int, JSON]] = []
        for choice in completion["choices"]:
            idx, msg = choice["index"], choice["message"]
            pieces.append((idx, {"role": "assistant", "content": ""}))
            if msg.get("tool_calls"):
                call = msg["tool_calls"][0]
                pieces.append((idx, {"tool_calls": [{"index": 0, "id": call["id"],
                                                     "type": "function",
                                                     "function": {"name": call["function"]["name"],
                                                                  "arguments": ""}}]}))
                args = call["function"]["arguments"]
                for j in range(0, len(args), 16):
                    pieces.append((idx, {"tool_calls": [{"index": 0, "function":
                                                         {"arguments": args[j:j + 16]}}]}))
            else:
                words = (msg.get("content") or "").split(" ")
                for j, w in enumerate(words):
                    pieces.append((idx, {"content": w if j == 0 else " " + w}))
        gap = max(total - ttft, 0.0) / max(len(pieces), 1)
        for idx, delta in pieces:
            yield {**base, "choices": [{"index": idx, "delta": delta, "logprobs": None,
                                        "finish_reason": None}]}
            if gap:
                await asyncio.sleep(gap)
        for choice in completion["choices"]:
            yield {**base, "choices": [{"index": choice["index"], "delta": {}, "logprobs": None,
                                        "finish_reason": choice["finish_reason"]}]}
        yield {**base, "choices": [], "usage": usage.to_openai()}

    async def embed(self, body: JSON) -> EmbeddingResult:
        await self._maybe_fail()
        delay = self._latency()
        if delay:
            await asyncio.sleep(delay)
        inputs = body["input"]
        if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        dims = int(body.get("dimensions") or 256)
        data, tokens = [], 0
        for i, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(map(str, item))
            tokens += estimate_text(text) if isinstance(item, str) else len(item)
            data.append({"object": "embedding", "index": i, "embedding": _hash_vector(text, dims)})
        usage = Usage(input_tokens=tokens)
        return EmbeddingResult(
            body={"object": "list", "data": data, "model": body["model"],
                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
            usage=usage, served_model=body["model"],
        )


def _hash_vector(text: str, dims: int) -> list[float]:
    """Feature hashing of lowercased words: texts sharing words get similar vectors."""
    vec = [0.0] * dims
    for word in re.findall(r"\w+", text.lower()) or [""]:
        h = hashlib.blake2b(word.encode(), digest_size=8).digest()
        slot, sign = struct.unpack("<IxxxB", h)[0] % dims, h[-1] & 1
        vec[slot] += 1.0 if sign else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [round(v / norm, 6) for v in vec]


def _example_for_schema(schema: Any, body: JSON, text: str = "") -> Any:
    """A value that satisfies a (simple) JSON schema, for mock tool calls and JSON output."""
    if not isinstance(schema, dict):  # schemas are the caller's: take any shape
        return None
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    minimum = schema.get("minimum")
    if not isinstance(minimum, int | float) or isinstance(minimum, bool):
        minimum = 1
    if kind == "object" or "properties" in schema:
        props = schema.get("properties")
        return {k: _example_for_schema(v, body, text)
                for k, v in (props.items() if isinstance(props, dict) else ())}
    if kind == "array":
        return [_example_for_schema(schema.get("items") or {}, body, text)]
    if kind == "integer":
        return int(minimum)
    if kind == "number":
        return float(minimum)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text[:80] if text else "example"
