"""Checks on inbound OpenAI-format bodies: fast, hand-written, with errors a person can act on.

Only what keel needs to be right about is checked (types of the fields it reads or that
providers translate); unknown fields pass through to OpenAI-compatible upstreams.
"""

from __future__ import annotations

from typing import Any

import orjson

from keel.errors import BodyTooLarge, InvalidRequest
from keel.types import JSON

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def parse_body(raw: bytes, max_bytes: int) -> JSON:
    if len(raw) > max_bytes:
        raise BodyTooLarge(
            f"request body is {len(raw)} bytes, over the {max_bytes}-byte limit; "
            "send less, or raise KEEL_MAX_BODY_BYTES"
        )
    if not raw:
        raise InvalidRequest("request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"request body must be a JSON object, not {type(body).__name__}"
        )
    return body


def _type_name(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(v), type(v).__name__)


def _want(cond: bool, param: str, expected: str, got: Any) -> None:
    if not cond:
        raise InvalidRequest(f"'{param}' must be {expected}, got {_type_name(got)}", param=param)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _model(body: JSON) -> str:
    model = body.get("model")
    if model is None:
        raise InvalidRequest("'model' is required; GET /v1/models lists the ones you may use",
                             param="model")
    _want(isinstance(model, str) and bool(model), "model", "a non-empty string", model)
    return str(model)


def _range(body: JSON, name: str, lo: float, hi: float, *, integer: bool = False) -> None:
    v = body.get(name)
    if v is None:
        return
    if integer:
        _want(_is_int(v), name, "an integer", v)
    else:
        _want(_is_num(v), name, "a number", v)
    if not lo <= v <= hi:
        raise InvalidRequest(f"'{name}' must be between {lo:g} and {hi:g}, got {v}", param=name)


def check_chat(body: JSON) -> str:
    """Validate a chat completions body; returns the model name."""
    model = _model(body)
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("'messages' is required: a list of {role, content} objects",
                             param="messages")
    _want(isinstance(messages, list), "messages", "an array", messages)
    if not messages:
        raise InvalidRequest("'messages' must contain at least one message", param="messages")
    for i, m in enumerate(messages):
        p = f"messages[{i}]"
        _want(isinstance(m, dict), p, "an object", m)
        role = m.get("role")
        if role not in ROLES:
            raise InvalidRequest(
                f"'{p}.role' must be one of {', '.join(sorted(ROLES))}, got {role!r}",
                param=f"{p}.role")
        content = m.get("content")
        if content is None:
            if role not in ("assistant", "function") or not (m.get("tool_calls")
                                                              or m.get("function_call")):
                raise InvalidRequest(f"'{p}.content' is required for a {role} message",
                                     param=f"{p}.content")
        else:
            _want(isinstance(content, str | list), f"{p}.content", "a string or an array of parts",
                  content)
        if role == "tool" and not isinstance(m.get("tool_call_id"), str):
            raise InvalidRequest(f"'{p}.tool_call_id' is required for a tool message",
                                 param=f"{p}.tool_call_id")
    stream = body.get("stream")
    if stream is not None:
        _want(isinstance(stream, bool), "stream", "a boolean", stream)
    opts = body.get("stream_options")
    if opts is not None:
        _want(isinstance(opts, dict), "stream_options", "an object", opts)
    for name in ("max_tokens", "max_completion_tokens"):
        _range(body, name, 1, 10_000_000, integer=True)
    _range(body, "temperature", 0, 2)
    _range(body, "top_p", 0, 1)
    _range(body, "n", 1, 128, integer=True)
    _range(body, "presence_penalty", -2, 2)
    _range(body, "frequency_penalty", -2, 2)
    seed = body.get("seed")
    if seed is not None:
        _want(_is_int(seed), "seed", "an integer", seed)
    stop = body.get("stop")
    if stop is not None:
        _want(isinstance(stop, str) or (isinstance(stop, list)
                                        and all(isinstance(s, str) for s in stop)),
              "stop", "a string or an array of strings", stop)
    tools = body.get("tools")
    if tools is not None:
        _want(isinstance(tools, list), "tools", "an array", tools)
        for i, t in enumerate(tools):
            p = f"tools[{i}]"
            _want(isinstance(t, dict), p, "an object", t)
            fn = t.get("function")
            _want(isinstance(fn, dict), f"{p}.function", "an object", fn)
            _want(isinstance(fn.get("name"), str) and bool(fn.get("name")), f"{p}.function.name",
                  "a non-empty string", fn.get("name"))
    rf = body.get("response_format")
    if rf is not None:
        _want(isinstance(rf, dict), "response_format", "an object", rf)
        if rf.get("type") not in ("text", "json_object", "json_schema"):
            raise InvalidRequest(
                "'response_format.type' must be text, json_object or json_schema, "
                f"got {rf.get('type')!r}", param="response_format.type")
    for name in ("user",):
        v = body.get(name)
        if v is not None:
            _want(isinstance(v, str), name, "a string", v)
    md = body.get("metadata")
    if md is not None:
        _want(isinstance(md, dict), "metadata", "an object", md)
        for k, v in md.items():
            _want(isinstance(v, str), f"metadata.{k}", "a string", v)
    return model


def check_embeddings(body: JSON) -> str:
    model = _model(body)
    inp = body.get("input")
    if inp is None:
        raise InvalidRequest("'input' is required: a string or an array of strings",
                             param="input")
    ok = isinstance(inp, str) or (
        isinstance(inp, list) and bool(inp) and (
            all(isinstance(x, str) for x in inp)
            or all(_is_int(x) for x in inp)
            or all(isinstance(x, list) and all(_is_int(y) for y in x) for x in inp)))
    _want(ok, "input", "a string, a non-empty array of strings, or token arrays", inp)
    if isinstance(inp, str) and not inp:
        raise InvalidRequest("'input' must not be empty", param="input")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise InvalidRequest(f"'encoding_format' must be float or base64, got {fmt!r}",
                             param="encoding_format")
    _range(body, "dimensions", 1, 65536, integer=True)
    return model
