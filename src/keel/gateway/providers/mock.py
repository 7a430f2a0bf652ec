"""The built-in offline provider: deterministic, no network, tunable latency and failures.

The same input always yields the same answer (text derived from a hash of the
messages and ``seed``), so demos, tests and evals are repeatable. Latency follows a
log-normal distribution given by its median and p99; failures (429, 500, timeout) occur
at configured rates. Clients see the shapes OpenAI sends:

- tools and ``tool_choice`` (arguments made from the function's JSON schema), and
  ``response_format`` ``json_object`` or ``json_schema`` (``$ref``/``$defs``, enums,
  arrays, ``anyOf``/nullable: see ``mock_schema``), so the SDKs' ``parse()`` works;
- ``n``, ``max_tokens`` (finish ``length``) and ``stop`` (finish ``stop``; the choice also
  carries the keel-internal ``stop_sequence`` naming the sequence that ended the text,
  which the gateway maps to Anthropic's ``stop_sequence`` and drops from OpenAI answers);
- ``logprobs``/``top_logprobs`` (0..20): ``choices[].logprobs.content``, also per stream
  chunk (``mock_tokens``);
- embeddings as floats or ``encoding_format: base64`` (little-endian float32);
- keel's own judge prompts get a parseable verdict (``mock_judge``).

What one request may cost is bounded: at most ``MAX_DIMENSIONS`` dimensions,
``MAX_EMBEDDING_INPUTS`` inputs and ``MAX_EMBEDDING_VALUES`` numbers per embeddings
request; answers of about ``output_tokens`` (at most ``MAX_ANSWER_TOKENS``) per choice,
``mock_schema.MAX_VALUES`` values of structured output and ``MAX_LOGPROBS`` log
probabilities across all choices; past a limit the answer is a 400 that names it. Larger
pieces of work (many inputs or choices, top log probabilities) are computed in a worker
thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
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
from keel.errors import (
    InvalidRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    excerpt,
)
from keel.gateway.providers import mock_judge, mock_tokens
from keel.gateway.providers.base import Provider, register_provider
from keel.gateway.providers.mock_schema import MAX_VALUES, SchemaProblem, example
from keel.text import content_text, estimate_messages, estimate_text
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

MAX_DIMENSIONS = 8192  # OpenAI's largest embedding model has 3072
DEFAULT_DIMENSIONS = 256
MAX_EMBEDDING_INPUTS = 2048  # as OpenAI
MAX_EMBEDDING_VALUES = 1 << 20  # inputs x dimensions: about 10 MB of JSON
MAX_ANSWER_TOKENS = 4096  # of one choice, whatever output_tokens says
MAX_LOGPROBS = 1 << 18  # token entries and their alternatives in one answer, all choices
OFFLOAD_WORK = 1 << 15  # work units (numbers, tokens, characters / 4) done inline at most


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
        target = max(4, int(self._answer_tokens() * (0.6 + 0.8 * rng.random())))
        parts = [rng.choice(_OPENERS).format(topic=topic)]
        length = len(parts[0])
        while (length + 3) // 4 < target:  # estimate_text(" ".join(parts)), kept as it grows
            parts.append(rng.choice(_SENTENCES).format(topic=topic, kw=rng.choice(keywords)))
            length += 1 + len(parts[-1])
        text = " ".join(parts)
        return text[0].upper() + text[1:]

    def _tool_call(self, body: JSON, index: int, budget: list[int]) -> JSON | None:
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
        param = f"tools[{tools.index(chosen)}].function.parameters"
        args = _example(fn.get("parameters") or {}, "", budget, param)
        call_id = "call_" + _digest(messages, fn.get("name"), index).hex()[:24]
        return {"id": call_id, "type": "function",
                "function": {"name": fn.get("name"), "arguments": orjson.dumps(args).decode()}}

    def _choice(self, body: JSON, index: int, top: int | None,
                budget: list[int]) -> tuple[JSON, int]:
        call = self._tool_call(body, index, budget)
        if call is not None:
            out_tokens = estimate_text(call["function"]["arguments"]) + 8
            logprobs = None if top is None else {"content": None, "refusal": None}
            return {"index": index, "finish_reason": "tool_calls", "logprobs": logprobs,
                    "message": {"role": "assistant", "content": None, "refusal": None,
                                "tool_calls": [call]}}, out_tokens
        messages = body.get("messages") or []
        text = mock_judge.verdict(messages) or ""
        fmt = body.get("response_format") or {}
        if text:
            pass  # a keel judge prompt: the verdict is the answer (a JSON object)
        elif fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema") or {}
            value = _example(schema, self._text(body, index), budget,
                             "response_format.json_schema.schema")
            text = orjson.dumps(value).decode()
        elif fmt.get("type") == "json_object":
            text = orjson.dumps({"answer": self._text(body, index)}).decode()
        else:
            text = self._text(body, index)
        choice: JSON = {"index": index, "finish_reason": "stop", "logprobs": None}
        stops = body.get("stop")
        # the sequence a model would have completed first: the one that ends earliest
        cut = min(((text.find(s) + len(s), text.find(s), s)
                   for s in ([stops] if isinstance(stops, str) else stops or [])
                   if s and s in text), default=None)
        if cut is not None:
            text = text[: cut[1]]
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit and estimate_text(text) > limit:
            text = text[: int(limit) * 4]
            choice["finish_reason"] = "length"
        elif cut is not None:
            choice["stop_sequence"] = cut[2]
        if top is not None:
            choice["logprobs"] = {"content": mock_tokens.logprobs(
                text, _digest(messages, body.get("seed"), index), top), "refusal": None}
        choice["message"] = {"role": "assistant", "content": text, "refusal": None}
        return choice, estimate_text(text)

    def _completion(self, body: JSON) -> tuple[JSON, Usage]:
        n = int(body.get("n") or 1)
        top = _top_logprobs(body)
        budget = [MAX_VALUES]  # structured values the choices may still make, together
        choices, out_tokens = [], 0
        for i in range(n):
            choice, tokens = self._choice(body, i, top, budget)
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

    def _answer_tokens(self) -> int:
        """The typical answer length: the configured one, at most MAX_ANSWER_TOKENS."""
        return min(self.config.output_tokens, MAX_ANSWER_TOKENS)

    def _large(self, body: JSON) -> bool:
        """Whether answering ``body`` is work enough to leave the event loop for; a 400
        when it is more than one mock request may cost."""
        n = int(body.get("n") or 1)
        top = _top_logprobs(body)
        tokens = n * max(self._answer_tokens(), 16) * 7 // 5  # answers are up to 1.4x typical
        if top is not None and tokens * (1 + top) > MAX_LOGPROBS:
            raise InvalidRequest(
                f"n {n} x about {tokens // n} tokens x (1 + top_logprobs {top}) is more log "
                f"probabilities than the mock provider makes in one request ({MAX_LOGPROBS}); "
                "lower n or top_logprobs", param="top_logprobs" if top else "n")
        work = tokens * (1 if top is None else 2 + top)
        if (body.get("response_format") or {}).get("type") == "json_schema" or body.get("tools"):
            work += n * 256
        return work > OFFLOAD_WORK

    async def _complete(self, body: JSON) -> tuple[JSON, Usage]:
        """The completion, built in a worker thread when it is a large piece of work."""
        if not self._large(body):
            return self._completion(body)
        return await asyncio.to_thread(self._completion, body)

    # --- Provider ----------------------------------------------------------------------------

    async def chat(self, body: JSON) -> ChatResult:
        await self._maybe_fail()
        delay = self._latency()
        if delay:
            await asyncio.sleep(delay)
        completion, usage = await self._complete(body)
        return ChatResult(body=completion, usage=usage, served_model=body["model"])

    async def chat_stream(self, body: JSON) -> AsyncIterator[JSON]:
        await self._maybe_fail()
        large = self._large(body)
        if large:
            completion, usage = await asyncio.to_thread(self._completion, body)
            pieces = await asyncio.to_thread(_pieces, completion)
        else:
            completion, usage = self._completion(body)
            pieces = _pieces(completion)
        total = self._latency()
        ttft = (self.config.latency.ttft_ms / 1000.0 if self.config.latency.ttft_ms is not None
                else total * 0.2)
        if ttft:
            await asyncio.sleep(ttft)
        base = {"id": completion["id"], "object": "chat.completion.chunk",
                "created": completion["created"], "model": body["model"],
                "system_fingerprint": "keel-mock"}
        gap = max(total - ttft, 0.0) / max(len(pieces), 1)
        for i, (idx, delta, delta_lp) in enumerate(pieces):
            yield {**base, "choices": [{"index": idx, "delta": delta, "logprobs": delta_lp,
                                        "finish_reason": None}]}
            if gap:
                await asyncio.sleep(gap)
            elif large and i % 64 == 63:
                await asyncio.sleep(0)  # thousands of chunks: let other requests in
        for choice in completion["choices"]:
            last: JSON = {"index": choice["index"], "delta": {}, "logprobs": None,
                          "finish_reason": choice["finish_reason"]}
            if "stop_sequence" in choice:
                last["stop_sequence"] = choice["stop_sequence"]
            yield {**base, "choices": [last]}
        yield {**base, "choices": [], "usage": usage.to_openai()}

    async def embed(self, body: JSON) -> EmbeddingResult:
        await self._maybe_fail()
        delay = self._latency()
        if delay:
            await asyncio.sleep(delay)
        inputs = body["input"]
        if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        dims = _dimensions(body, len(inputs))
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise InvalidRequest(f"'encoding_format' must be float or base64, got "
                                 f"{excerpt(fmt)}", param="encoding_format")
        work = len(inputs) * dims + sum(len(i) for i in inputs) // 4
        if work <= OFFLOAD_WORK:
            data, tokens = _embeddings(inputs, dims, fmt)
        else:
            data, tokens = await asyncio.to_thread(_embeddings, inputs, dims, fmt)
        usage = Usage(input_tokens=tokens)
        return EmbeddingResult(
            body={"object": "list", "data": data, "model": body["model"],
                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
            usage=usage, served_model=body["model"],
        )


def _pieces(completion: JSON) -> list[tuple[int, JSON, JSON | None]]:
    """A completion's stream deltas: (choice index, delta, its logprobs or None)."""
    pieces: list[tuple[int, JSON, JSON | None]] = []
    for choice in completion["choices"]:
        idx, msg, lp = choice["index"], choice["message"], choice["logprobs"]
        pieces.append((idx, {"role": "assistant", "content": ""}, None))
        if msg.get("tool_calls"):
            call = msg["tool_calls"][0]
            pieces.append((idx, {"tool_calls": [{"index": 0, "id": call["id"],
                                                 "type": "function",
                                                 "function": {"name": call["function"]["name"],
                                                              "arguments": ""}}]}, None))
            args = call["function"]["arguments"]
            for j in range(0, len(args), 16):
                pieces.append((idx, {"tool_calls": [{"index": 0, "function":
                                                     {"arguments": args[j:j + 16]}}]}, None))
            continue
        entries = (lp or {}).get("content") or []
        at = 0
        for group in mock_tokens.words(msg.get("content") or ""):
            delta_lp = None
            if lp is not None:
                delta_lp = {"content": entries[at:at + len(group)], "refusal": None}
            at += len(group)
            pieces.append((idx, {"content": "".join(group)}, delta_lp))
    return pieces


def _top_logprobs(body: JSON) -> int | None:
    """How many alternatives each token lists, or None when ``logprobs`` is not asked for."""
    wanted, top = body.get("logprobs"), body.get("top_logprobs")
    if wanted is not None and not isinstance(wanted, bool):
        raise InvalidRequest(f"'logprobs' must be a boolean, got {excerpt(wanted)}",
                             param="logprobs")
    if top is None:
        return 0 if wanted else None
    if isinstance(top, bool) or not isinstance(top, int) or \
            not 0 <= top <= mock_tokens.MAX_TOP_LOGPROBS:
        raise InvalidRequest(f"'top_logprobs' must be an integer from 0 to "
                             f"{mock_tokens.MAX_TOP_LOGPROBS}, got {excerpt(top)}",
                             param="top_logprobs")
    if not wanted:
        raise InvalidRequest("'top_logprobs' needs 'logprobs': true", param="top_logprobs")
    return top


def _dimensions(body: JSON, inputs: int) -> int:
    dims = int(body.get("dimensions") or DEFAULT_DIMENSIONS)
    if dims > MAX_DIMENSIONS:
        raise InvalidRequest(f"'dimensions' is {dims}; the mock provider makes at most "
                             f"{MAX_DIMENSIONS} (OpenAI's largest embedding model has 3072)",
                             param="dimensions")
    if inputs > MAX_EMBEDDING_INPUTS:
        raise InvalidRequest(f"'input' holds {inputs} items; at most {MAX_EMBEDDING_INPUTS} "
                             "per request: send them in several requests", param="input")
    if inputs * dims > MAX_EMBEDDING_VALUES:
        raise InvalidRequest(f"{inputs} inputs x {dims} dimensions is {inputs * dims} numbers; "
                             f"the mock provider answers at most {MAX_EMBEDDING_VALUES} per "
                             "request: send fewer inputs or fewer dimensions", param="input")
    return dims


def _embeddings(inputs: list[Any], dims: int, fmt: str) -> tuple[list[JSON], int]:
    data, tokens = [], 0
    for i, item in enumerate(inputs):
        text = item if isinstance(item, str) else " ".join(map(str, item))
        tokens += estimate_text(text) if isinstance(item, str) else len(item)
        vec = _hash_vector(text, dims)
        value: Any = vec
        if fmt == "base64":  # OpenAI's form: little-endian float32
            value = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    return data, tokens


def _hash_vector(text: str, dims: int) -> list[float]:
    """Feature hashing of lowercased words: texts sharing words get similar vectors."""
    slots: dict[int, float] = {}
    for word in re.findall(r"\w+", text.lower()) or [""]:
        h = hashlib.blake2b(word.encode(), digest_size=8).digest()
        slot, sign = struct.unpack("<IxxxB", h)[0] % dims, h[-1] & 1
        slots[slot] = slots.get(slot, 0.0) + (1.0 if sign else -1.0)
    norm = math.sqrt(sum(v * v for v in slots.values())) or 1.0
    vec = [0.0] * dims
    for slot, v in slots.items():
        vec[slot] = round(v / norm, 6)
    return vec


def _example(schema: Any, text: str, budget: list[int], param: str) -> Any:
    """An example value for ``schema`` (``mock_schema``); a schema the mock cannot satisfy
    is the client's 400, naming where the schema is. ``budget`` holds the structured values
    the request may still make, across its choices."""
    try:
        value, used = example(schema, text, budget[0])
    except SchemaProblem as exc:
        raise InvalidRequest(f"'{param}': {exc}", param=param) from None
    budget[0] -= used
    return value
