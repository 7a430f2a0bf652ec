"""Pure translation for keel's inbound Anthropic Messages API (``POST /v1/messages``).

The reverse of ``anthropic_format``: an Anthropic Messages request (validated here, with
``InvalidRequest`` errors naming the field) becomes the OpenAI chat body the gateway
speaks; the OpenAI completion or chunk stream that comes back becomes an Anthropic
message or SSE event stream.

Where the protocols differ: ``tool_result`` blocks become ``tool`` messages placed before
the rest of their user turn (an ``is_error`` result is prefixed with ``Error: ``);
``thinking`` blocks in the history are dropped; ``top_k``, ``thinking`` and
``service_tier`` are dropped; ``metadata.user_id`` becomes ``user`` and any other string
``metadata`` keys are kept for keel's attribution (feature, session, tags);
``output_config.format`` (structured output) becomes ``response_format`` ``json_schema``
and ``output_config.effort`` is dropped. Streamed
``message_start`` reports ``input_tokens: 0`` because OpenAI upstreams report usage only at
the end; the true counts arrive in ``message_delta``, which the SDKs apply. A choice that carries
keel's internal ``stop_sequence`` (the provider said which stop sequence ended it) answers
``stop_reason: "stop_sequence"`` with that sequence; an upstream that does not say (OpenAI)
answers ``end_turn``.
"""

from __future__ import annotations

from typing import Any

import orjson

from keel.errors import InvalidRequest, excerpt
from keel.gateway.anthropic_format import STOP_REASONS, STOP_SEQUENCE, usage_to_anthropic
from keel.gateway.validate import key_excerpt
from keel.text import content_text
from keel.types import JSON, Usage


def _bad(field: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"{field}: {problem}", param=field)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _text_of(content: Any, field: str) -> str:
    """A string or a list of text blocks -> one string (system blocks are paragraphs)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(field, "must be a string or a list of text blocks")
    for i, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text" \
                or not isinstance(block.get("text"), str):
            raise _bad(f"{field}.{i}", "must be a text block {type: text, text: ...}")
    return content_text(content, "\n\n" if field == "system" else "")


def _image_part(block: JSON, field: str) -> JSON:
    src = block.get("source")
    if not isinstance(src, dict):
        raise _bad(f"{field}.source", "is required for an image block")
    if src.get("type") == "base64":
        if not isinstance(src.get("media_type"), str) or not isinstance(src.get("data"), str):
            raise _bad(f"{field}.source", "a base64 source needs media_type and data strings")
        url = f"data:{src['media_type']};base64,{src['data']}"
    elif src.get("type") == "url" and isinstance(src.get("url"), str):
        url = src["url"]
    else:
        raise _bad(f"{field}.source.type", "must be base64 or url")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_message(block: JSON, field: str) -> JSON:
    if not isinstance(block.get("tool_use_id"), str):
        raise _bad(f"{field}.tool_use_id", "is required for a tool_result block")
    content = block.get("content")
    text = "" if content is None else _text_of(
        [b for b in content if not (isinstance(b, dict) and b.get("type") == "image")]
        if isinstance(content, list) else content, f"{field}.content")
    if block.get("is_error"):
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}


def _user_turn(content: list[Any], field: str) -> list[JSON]:
    tools: list[JSON] = []
    parts: list[JSON] = []
    for j, block in enumerate(content):
        where = f"{field}.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append(_image_part(block, where))
        elif kind == "tool_result":
            tools.append(_tool_message(block, where))
        else:
            raise _bad(f"{where}.type", f"{excerpt(kind)} is not supported in a user turn by keel; "
                       "use text, image or tool_result blocks")
    if parts:
        tools.append({"role": "user", "content": parts})
    return tools


def _assistant_turn(content: list[Any], field: str) -> JSON:
    texts: list[str] = []
    calls: list[JSON] = []
    for j, block in enumerate(content):
        where = f"{field}.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise _bad(where, "a tool_use block needs id and name strings")
            args = orjson.dumps(block.get("input") or {}).decode()
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"], "arguments": args}})
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise _bad(f"{where}.type", f"{excerpt(kind)} is not supported in an assistant turn "
                       "by keel; use text or tool_use blocks")
    msg: JSON = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        msg["tool_calls"] = calls
    elif msg["content"] is None:
        msg["content"] = ""
    return msg


def _messages(messages: Any) -> list[JSON]:
    if not isinstance(messages, list):
        raise _bad("messages", "must be a list of {role, content} objects")
    if not messages:
        raise _bad("messages", "must contain at least one message")
    out: list[JSON] = []
    for i, m in enumerate(messages):
        field = f"messages.{i}"
        if not isinstance(m, dict):
            raise _bad(field, "must be an object with role and content")
        role, content = m.get("role"), m.get("content")
        if role not in ("user", "assistant"):
            raise _bad(f"{field}.role", f"must be 'user' or 'assistant', got {excerpt(role)}")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
        elif isinstance(content, list):
            if role == "user":
                out += _user_turn(content, f"{field}.content")
            else:
                out.append(_assistant_turn(content, f"{field}.content"))
        else:
            raise _bad(f"{field}.content", "must be a string or a list of content blocks")
    return out


def _tools(tools: Any) -> list[JSON]:
    if not isinstance(tools, list):
        raise _bad("tools", "must be a list")
    out = []
    for i, t in enumerate(tools):
        if not isinstance(t, dict) or t.get("type", "custom") != "custom":
            kind = t.get("type") if isinstance(t, dict) else None
            raise _bad(f"tools.{i}", f"tool type {excerpt(kind)} is not supported by keel; "
                       "only custom tools {name, description, input_schema}")
        if not isinstance(t.get("name"), str) or not t["name"]:
            raise _bad(f"tools.{i}.name", "is required")
        if not isinstance(t.get("input_schema"), dict):
            raise _bad(f"tools.{i}.input_schema", "is required and must be a JSON schema object")
        fn: JSON = {"name": t["name"], "parameters": t["input_schema"]}
        if isinstance(t.get("description"), str):
            fn["description"] = t["description"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any, out: JSON) -> None:
    kind = choice.get("type") if isinstance(choice, dict) else None
    mapped = {"auto": "auto", "any": "required", "none": "none"}
    if isinstance(kind, str) and kind in mapped:
        out["tool_choice"] = mapped[kind]
    elif kind == "tool" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise _bad("tool_choice", "must be {type: auto|any|none} or {type: tool, name}")
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False


def openai_body_from_anthropic(body: JSON, *, with_prompt: bool = False,
                               counting: bool = False) -> JSON:
    """Validate an Anthropic Messages request and translate it to an OpenAI chat body.

    ``with_prompt``: the request names a registered prompt, which supplies the model, the
    messages (the request's own follow them) and possibly max_tokens, so those may be
    absent here. ``counting``: a ``count_tokens`` body, which has no max_tokens."""
    out: JSON = {}
    model = body.get("model")
    if model is not None or not with_prompt:
        if not isinstance(model, str) or not model:
            raise _bad("model", "is required and must be a non-empty string")
        out["model"] = model
    max_tokens = body.get("max_tokens")
    if max_tokens is None and not (with_prompt or counting):
        raise _bad("max_tokens", "is required")
    if max_tokens is not None:
        if not _int(max_tokens) or max_tokens < 1:
            raise _bad("max_tokens", "must be a positive integer")
        out["max_tokens"] = max_tokens
    messages = [] if with_prompt and body.get("messages") is None \
        else _messages(body.get("messages"))
    system = body.get("system")
    if system is not None:
        text = _text_of(system, "system")
        if text:
            messages.insert(0, {"role": "system", "content": text})
    out["messages"] = messages
    for name, hi in (("temperature", 1.0), ("top_p", 1.0)):
        v = body.get(name)
        if v is not None:
            if not _num(v) or not 0 <= v <= hi:
                raise _bad(name, f"must be a number between 0 and {hi:g}")
            out[name] = v
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _bad("stop_sequences", "must be a list of strings")
        if stops:
            out["stop"] = stops
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("stream", "must be a boolean")
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    if body.get("tools") is not None:
        out["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], out)
    fmt = (body.get("output_config") or {}).get("format") \
        if isinstance(body.get("output_config"), dict) else None
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" \
                or not isinstance(fmt.get("schema"), dict):
            raise _bad("output_config.format", "must be {type: json_schema, schema: {...}}")
        out["response_format"] = {"type": "json_schema",
                                  "json_schema": {"name": "output", "schema": fmt["schema"]}}
    md = body.get("metadata")
    if md is not None:
        if not isinstance(md, dict):
            raise _bad("metadata", "must be an object")
        for k, v in md.items():
            if v is not None and not isinstance(v, str):
                raise _bad(f"metadata.{key_excerpt(k)}", "must be a string")
        if md.get("user_id"):
            out["user"] = md["user_id"]
        extra = {k: v for k, v in md.items() if k != "user_id" and v is not None}
        if extra:
            out["metadata"] = extra
    return out


# --- OpenAI completion -> Anthropic message -------------------------------------------------


def message_id(openai_id: Any) -> str:
    raw = str(openai_id or "")
    return "msg_" + (raw.removeprefix("chatcmpl-") or "keel")


def _tool_input(arguments: Any) -> Any:
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_raw_arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def anthropic_message_from_openai(body: JSON, usage: Usage, model: str) -> JSON:
    choices = body.get("choices") or [{}]
    choice = choices[0]
    msg = choice.get("message") or {}
    content: list[JSON] = []
    text = msg.get("content") or msg.get("refusal")
    if text:
        content.append({"type": "text", "text": text})
    for call in msg.get("tool_calls") or ():
        fn = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"),
                        "input": _tool_input(fn.get("arguments"))})
    reason = "refusal" if msg.get("refusal") and not msg.get("content") else \
        STOP_REASONS.get(str(choice.get("finish_reason")), "end_turn")
    sequence = _stop_sequence(choice)
    if sequence is not None:
        reason = "stop_sequence"
    return {"id": message_id(body.get("id")), "type": "message", "role": "assistant",
            "model": str(body.get("model") or model), "content": content,
            "stop_reason": reason, "stop_sequence": sequence,
            "usage": usage_to_anthropic(usage)}


def _stop_sequence(choice: JSON) -> str | None:
    """The stop sequence that ended ``choice`` (keel's internal key), if one did."""
    sequence = choice.get(STOP_SEQUENCE)
    if isinstance(sequence, str) and choice.get("finish_reason") in ("stop", None):
        return sequence
    return None


# --- OpenAI chunks -> Anthropic SSE events --------------------------------------------------


class AnthropicEventStream:
    """Stateful: ``feed`` each OpenAI chunk, then ``finish``; both return (event, data) pairs."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.started = False
        self._next_block = 0
        self._open: int | None = None  # index of the open content block
        self._open_text = False
        self._tools: dict[int, int] = {}  # OpenAI tool call index -> block index
        self._reason = "end_turn"
        self._sequence: str | None = None
        self._usage = Usage()

    def _start(self, chunk: JSON) -> list[tuple[str, JSON]]:
        self.started = True
        self.model = str(chunk.get("model") or self.model)
        return [("message_start", {"type": "message_start", "message": {
            "id": message_id(chunk.get("id")), "type": "message", "role": "assistant",
            "model": self.model, "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}}})]

    def _close(self) -> list[tuple[str, JSON]]:
        if self._open is None:
            return []
        index, self._open = self._open, None
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _open_block(self, block: JSON, text: bool) -> list[tuple[str, JSON]]:
        events = self._close()
        self._open, self._open_text = self._next_block, text
        self._next_block += 1
        events.append(("content_block_start", {"type": "content_block_start",
                                               "index": self._open, "content_block": block}))
        return events

    def feed(self, chunk: JSON) -> list[tuple[str, JSON]]:
        events = [] if self.started else self._start(chunk)
        if chunk.get("usage"):
            self._usage = Usage.from_openai(chunk["usage"])
        for choice in chunk.get("choices") or ():
            if int(choice.get("index") or 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if self._open is None or not self._open_text:
                    events += self._open_block({"type": "text", "text": ""}, True)
                events.append(("content_block_delta", {
                    "type": "content_block_delta", "index": self._open,
                    "delta": {"type": "text_delta", "text": delta["content"]}}))
            for call in delta.get("tool_calls") or ():
                events += self._tool_delta(call)
            if choice.get("finish_reason"):
                self._reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
            sequence = _stop_sequence(choice)
            if sequence is not None:
                self._reason, self._sequence = "stop_sequence", sequence
        return events

    def _tool_delta(self, call: JSON) -> list[tuple[str, JSON]]:
        events: list[tuple[str, JSON]] = []
        idx = int(call.get("index") or 0)
        fn = call.get("function") or {}
        if idx not in self._tools:
            events += self._open_block({"type": "tool_use", "id": call.get("id") or f"toolu_{idx}",
                                        "name": fn.get("name") or "", "input": {}}, False)
            assert self._open is not None
            self._tools[idx] = self._open
        if fn.get("arguments"):
            events.append(("content_block_delta", {
                "type": "content_block_delta", "index": self._tools[idx],
                "delta": {"type": "input_json_delta", "partial_json": fn["arguments"]}}))
        return events

    def finish(self) -> list[tuple[str, JSON]]:
        events = self._close()
        events.append(("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": self._reason, "stop_sequence": self._sequence},
            "usage": usage_to_anthropic(self._usage)}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events
