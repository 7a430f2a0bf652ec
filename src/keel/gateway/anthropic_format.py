"""Pure translation between keel's internal OpenAI chat format and Anthropic Messages.

No I/O here: the provider adapter (``providers.anthropic``) and the inbound API
(``anthropic_api``) do the HTTP. This module holds the outbound direction (OpenAI body ->
Anthropic request, Anthropic response and stream events -> OpenAI completion and chunks)
and the shared vocabulary; the inbound direction is in ``anthropic_inbound_format``.

Choices made where the two protocols differ:

* System and developer messages, wherever they appear, become the top-level ``system``
  (joined by blank lines; a list of blocks when a part carries ``cache_control``).
* Consecutive messages of one role are merged into one turn; ``tool`` messages become
  ``tool_result`` blocks at the head of a user turn.
* ``temperature`` above 1 (OpenAI allows up to 2, Anthropic 1) is clamped to 1.
* ``n`` > 1 is refused (``InvalidRequest`` naming ``n``). ``seed``, penalties, logprobs,
  ``logit_bias`` and other OpenAI-only knobs are dropped.
* ``response_format`` ``json_schema`` is served by a forced tool: the schema becomes a
  tool the model must call (``tool_choice`` ``tool``, or ``any`` when the caller also
  passed tools), and that tool's input comes back as the message *content* (a JSON
  string) with ``finish_reason`` ``stop``, streamed as content deltas. This works on
  every Claude model and API version, unlike the newer native structured outputs.
  ``json_object`` has no schema: a one-line instruction is added to ``system``.
* A stop sequence that ended the answer (``stop_reason`` ``stop_sequence``) is finish reason
  ``stop``, and the sequence rides on the choice (on the final chunk's choice in a stream)
  as ``STOP_SEQUENCE``, a keel-internal key the OpenAI endpoint removes and ``/v1/messages``
  answers with.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson

from keel.errors import InvalidRequest
from keel.types import JSON, Usage

DEFAULT_MAX_TOKENS = 4096
# keel-internal key on a choice of an OpenAI-format completion or chunk: the stop sequence
# that ended it, when the provider said which (never sent to OpenAI clients)
STOP_SEQUENCE = "stop_sequence"
JSON_OBJECT_INSTRUCTION = "Respond with a single valid JSON object and nothing else."

# Anthropic stop_reason -> OpenAI finish_reason
FINISH_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}
# OpenAI finish_reason -> Anthropic stop_reason
STOP_REASONS = {
    "stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
    "function_call": "tool_use", "content_filter": "refusal",
}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+);base64,(.*)$", re.DOTALL)


def usage_from_anthropic(u: JSON | None) -> Usage:
    """Anthropic counts cache reads and writes apart from ``input_tokens``; keel includes them."""
    u = u or {}
    fresh = int(u.get("input_tokens") or 0)
    read = int(u.get("cache_read_input_tokens") or 0)
    write = int(u.get("cache_creation_input_tokens") or 0)
    return Usage(input_tokens=fresh + read + write, output_tokens=int(u.get("output_tokens") or 0),
                 cached_tokens=read, cache_write_tokens=write)


def usage_to_anthropic(usage: Usage) -> JSON:
    fresh = max(usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens, 0)
    return {"input_tokens": fresh, "output_tokens": usage.output_tokens,
            "cache_read_input_tokens": usage.cached_tokens,
            "cache_creation_input_tokens": usage.cache_write_tokens}


# --- OpenAI request -> Anthropic request ------------------------------------------------------


def _text_block(part: JSON) -> JSON:
    block: JSON = {"type": "text", "text": part.get("text") or ""}
    if part.get("cache_control"):
        block["cache_control"] = part["cache_control"]
    return block


def _image_block(part: JSON, where: str) -> JSON:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"'{where}.image_url.url' must be a non-empty string",
                             param=f"{where}.image_url.url")
    if url.startswith("data:"):
        m = _DATA_URL.match(url)
        if m is None:
            raise InvalidRequest(f"'{where}.image_url.url' is a data URL that is not "
                                 "'data:<media type>;base64,<data>'",
                                 param=f"{where}.image_url.url")
        return {"type": "image", "source": {"type": "base64", "media_type": m.group(1),
                                            "data": m.group(2)}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any, where: str) -> list[JSON]:
    """OpenAI message content (string or parts) -> Anthropic content blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append(_text_block(part))
        elif kind == "image_url":
            blocks.append(_image_block(part, f"{where}[{j}]"))
        else:
            raise InvalidRequest(f"'{where}[{j}].type' {kind!r} cannot be sent to an anthropic "
                                 "model; use text or image_url parts", param=f"{where}[{j}].type")
    return blocks


def _tool_use(call: Any, where: str) -> JSON:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise InvalidRequest(f"'{where}.function.name' is required", param=f"{where}.function")
    raw = fn.get("arguments") or "{}"
    try:
        args = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        raise InvalidRequest(f"'{where}.function.arguments' is not valid JSON",
                             param=f"{where}.function.arguments") from None
    if not isinstance(args, dict):
        raise InvalidRequest(f"'{where}.function.arguments' must encode a JSON object",
                             param=f"{where}.function.arguments")
    return {"type": "tool_use", "id": str(call.get("id") or ""), "name": fn["name"],
            "input": args}


def _messages(messages: list[JSON]) -> tuple[list[JSON], list[JSON]]:
    """Returns (system blocks, Anthropic messages with roles merged into turns)."""
    system: list[JSON] = []
    turns: list[JSON] = []
    for i, m in enumerate(messages):
        role, where = m.get("role"), f"messages[{i}].content"
        if role in ("system", "developer"):
            system += _blocks(m.get("content"), where)
            continue
        if role == "user":
            turn_role, blocks = "user", _blocks(m.get("content"), where)
        elif role == "assistant":
            turn_role, blocks = "assistant", _blocks(m.get("content"), where)
            blocks = [b for b in blocks if b["type"] != "text" or b["text"]]
            blocks += [_tool_use(c, f"messages[{i}].tool_calls[{j}]")
                       for j, c in enumerate(m.get("tool_calls") or ())]
        elif role == "tool":
            content = m.get("content")
            result = content if isinstance(content, str) else _blocks(content, where)
            turn_role, blocks = "user", [{"type": "tool_result",
                                          "tool_use_id": m.get("tool_call_id"), "content": result}]
        else:
            raise InvalidRequest(f"'messages[{i}].role' {role!r} cannot be sent to an anthropic "
                                 "model; use tools and tool messages", param=f"messages[{i}].role")
        if turns and turns[-1]["role"] == turn_role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": turn_role, "content": blocks})
    return system, turns


def _tools(tools: list[JSON]) -> list[JSON]:
    out = []
    for i, t in enumerate(tools):
        if t.get("type", "function") != "function":
            raise InvalidRequest(f"'tools[{i}].type' {t.get('type')!r} cannot be sent to an "
                                 "anthropic model; only function tools", param=f"tools[{i}].type")
        fn = t["function"]
        tool: JSON = {"name": fn["name"],
                      "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}}
        if fn.get("description"):
            tool["description"] = fn["description"]
        out.append(tool)
    return out


def _tool_choice(choice: Any) -> JSON | None:
    if choice is None or choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        return {"type": "tool", "name": choice["function"]["name"]}
    raise InvalidRequest("'tool_choice' must be auto, required, none or "
                         "{type: function, function: {name}}", param="tool_choice")


def _answer_tool(fmt: JSON, taken: set[str]) -> JSON:
    spec = fmt.get("json_schema") or {}
    name = spec.get("name") if isinstance(spec.get("name"), str) else ""
    if not _TOOL_NAME.match(name or "") or name in taken:
        name = "structured_output"
    return {"name": name, "description": spec.get("description")
            or "Give the final answer by calling this tool with it as the input.",
            "input_schema": spec.get("schema") or {"type": "object"}}


def to_anthropic_request(body: JSON) -> tuple[JSON, str | None]:
    """OpenAI chat body -> (Anthropic Messages body, name of the structured-output tool)."""
    if int(body.get("n") or 1) > 1:
        raise InvalidRequest("'n' greater than 1 is not supported by anthropic models; "
                             "send n separate requests", param="n")
    system, turns = _messages(body.get("messages") or [])
    out: JSON = {"model": body["model"], "messages": turns,
                 "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens")
                 or DEFAULT_MAX_TOKENS}
    if body.get("temperature") is not None:
        out["temperature"] = min(float(body["temperature"]), 1.0)
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    tools = _tools(body.get("tools") or [])
    choice = _tool_choice(body.get("tool_choice")) if tools else None
    fmt = body.get("response_format") or {}
    answer: str | None = None
    if fmt.get("type") == "json_schema":
        if choice is not None and choice["type"] in ("none", "tool"):
            raise InvalidRequest("response_format json_schema cannot be combined with "
                                 "tool_choice none or a named tool for anthropic models",
                                 param="response_format")
        tool = _answer_tool(fmt, {t["name"] for t in tools})
        answer = tool["name"]
        choice = {"type": "any"} if tools else {"type": "tool", "name": answer}
        tools.append(tool)
    elif fmt.get("type") == "json_object":
        system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})
    if tools:
        out["tools"] = tools
        assert choice is not None
        if body.get("parallel_tool_calls") is False and choice["type"] in ("auto", "any", "tool"):
            choice["disable_parallel_tool_use"] = True
        out["tool_choice"] = choice
    if system:
        if any("cache_control" in b for b in system):
            out["system"] = system
        else:
            out["system"] = "\n\n".join(b["text"] for b in system)
    return out, answer


# --- Anthropic response -> OpenAI completion ------------------------------------------------


def _finish(stop_reason: Any, answered: bool) -> str:
    if answered and stop_reason == "tool_use":
        return "stop"
    return FINISH_REASONS.get(str(stop_reason), "stop")


def from_anthropic_response(data: JSON, answer_tool: str | None) -> tuple[JSON, Usage]:
    """Anthropic ``message`` -> (OpenAI ``chat.completion``, usage)."""
    texts: list[str] = []
    calls: list[JSON] = []
    answered = False
    for block in data.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use" and answer_tool is not None and block.get("name") == answer_tool:
            texts = [orjson.dumps(block.get("input") or {}).decode()]
            answered = True
        elif kind == "tool_use":
            calls.append({"id": block.get("id"), "type": "function", "function": {
                "name": block.get("name"),
                "arguments": orjson.dumps(block.get("input") or {}).decode()}})
    message: JSON = {"role": "assistant", "content": "".join(texts) or None, "refusal": None}
    if calls and not answered:
        message["tool_calls"] = calls
    usage = usage_from_anthropic(data.get("usage"))
    choice: JSON = {"index": 0, "message": message, "logprobs": None,
                    "finish_reason": _finish(data.get("stop_reason"), answered)}
    matched = _matched(data.get("stop_reason"), data.get("stop_sequence"))
    if matched is not None:
        choice[STOP_SEQUENCE] = matched
    return {
        "id": str(data.get("id") or ""), "object": "chat.completion",
        "created": int(time.time()), "model": str(data.get("model") or ""),
        "choices": [choice], "usage": usage.to_openai(),
    }, usage


def _matched(stop_reason: Any, sequence: Any) -> str | None:
    """The stop sequence that ended an answer, when Anthropic says one did."""
    return sequence if stop_reason == "stop_sequence" and isinstance(sequence, str) else None


# --- Anthropic stream events -> OpenAI chunks -----------------------------------------------


class StreamTranslator:
    """Turns Anthropic stream events into OpenAI ``chat.completion.chunk`` dicts, one event
    at a time. ``done`` turns true at ``message_stop``, after the final usage chunk."""

    def __init__(self, model: str, answer_tool: str | None = None) -> None:
        self.answer_tool = answer_tool
        self.base: JSON = {"id": "", "object": "chat.completion.chunk",
                           "created": int(time.time()), "model": model}
        self.usage: JSON = {}
        self.done = False
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index
        self._answer_block: int | None = None
        self._answered = False

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        return {**self.base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                          "finish_reason": finish}]}

    def feed(self, event: JSON) -> list[JSON]:
        kind = event.get("type")
        if kind == "message_start":
            msg = event.get("message") or {}
            self.base["id"] = str(msg.get("id") or "")
            self.base["model"] = str(msg.get("model") or self.base["model"])
            self.usage = dict(msg.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(int(event.get("index") or 0),
                                     event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(event.get("index") or 0), event.get("delta") or {})
        if kind == "message_delta":
            usage = event.get("usage") or {}
            self.usage.update({k: v for k, v in usage.items() if v is not None})
            delta = event.get("delta") or {}
            reason = delta.get("stop_reason")
            if not reason:
                return []
            chunk = self._chunk({}, _finish(reason, self._answered))
            matched = _matched(reason, delta.get("stop_sequence"))
            if matched is not None:
                chunk["choices"][0][STOP_SEQUENCE] = matched
            return [chunk]
        if kind == "message_stop":
            self.done = True
            return [{**self.base, "choices": [],
                     "usage": usage_from_anthropic(self.usage).to_openai()}]
        return []  # ping, content_block_stop, and event types added later (the provider
        # handles ``error`` events before they get here)

    def _block_start(self, index: int, block: JSON) -> list[JSON]:
        kind = block.get("type")
        if kind == "text":
            return [self._chunk({"content": block["text"]})] if block.get("text") else []
        if kind != "tool_use":
            return []  # thinking and server-side blocks have no OpenAI counterpart
        if self.answer_tool is not None and block.get("name") == self.answer_tool:
            self._answer_block, self._answered = index, True
            return []
        call = len(self._tools)
        self._tools[index] = call
        return [self._chunk({"tool_calls": [{
            "index": call, "id": block.get("id"), "type": "function",
            "function": {"name": block.get("name"), "arguments": ""}}]})]

    def _block_delta(self, index: int, delta: JSON) -> list[JSON]:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if kind == "input_json_delta" and delta.get("partial_json"):
            if index == self._answer_block:
                return [self._chunk({"content": delta["partial_json"]})]
            if index in self._tools:
                return [self._chunk({"tool_calls": [{
                    "index": self._tools[index],
                    "function": {"arguments": delta["partial_json"]}}]})]
        return []
