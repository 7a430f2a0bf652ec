"""Checks on inbound OpenAI-format bodies: fast, hand-written, with errors a person can act on.

Every field keel reads, or that a provider adapter translates, is type-checked here before
anything uses it, and an error names the field as ``param`` (``messages[2].tool_calls``)
and quotes at most an excerpt of the value. Unknown fields pass through to
OpenAI-compatible upstreams.

``parse_body`` also refuses a body nested deeper than ``MAX_DEPTH`` objects and arrays
inside each other (400 ``body_too_deep``): no real client comes close (tool schemas
included), and a trace must be writable as JSON, which orjson does to 254 levels only.
"""

from __future__ import annotations

from typing import Any

import orjson

from keel.errors import BodyTooLarge, InvalidRequest, excerpt
from keel.types import JSON

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
TOOL_CHOICES = ("none", "auto", "required")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
MAX_DEPTH = 64
MAX_NAME_CHARS = 256  # model names and the like: the width of the trace's label columns


_CONTAINERS = frozenset({dict, list})  # what orjson makes of JSON objects and arrays


def nesting_depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` nests objects/arrays more than ``limit`` levels deep (a scalar is
    level 0, ``{}`` level 1). Iterative: one pass over the values, level by level."""
    level: list[Any] = [value] if value.__class__ in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        nxt: list[Any] = []
        add = nxt.append
        for node in level:
            for child in (node.values() if node.__class__ is dict else node):
                if child.__class__ in _CONTAINERS:
                    add(child)
        level = nxt
    return False


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
    if nesting_depth_over(body, MAX_DEPTH):
        raise InvalidRequest(
            f"request body nests objects and arrays more than {MAX_DEPTH} levels deep; keel "
            f"takes at most {MAX_DEPTH} (real requests, tool schemas included, need far fewer)",
            code="body_too_deep")
    return body


def key_excerpt(key: str, limit: int = 64) -> str:
    """An object key as it may appear in a ``param`` path: cut when long."""
    return key if len(key) <= limit else key[:limit] + "..."


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


def _opt(d: JSON, name: str, param: str, ok: Any, expected: str) -> Any:
    """``d[name]`` when present, checked with ``ok``; None when absent or null."""
    v = d.get(name)
    if v is not None:
        _want(ok(v), param, expected, v)
    return v


def _str(v: Any) -> bool:
    return isinstance(v, str)


def _model(body: JSON) -> str:
    model = body.get("model")
    if model is None:
        raise InvalidRequest("'model' is required; GET /v1/models lists the ones you may use",
                             param="model")
    _want(isinstance(model, str) and bool(model), "model", "a non-empty string", model)
    if len(model) > MAX_NAME_CHARS:
        raise InvalidRequest(f"'model' is {len(model)} characters long; no model name is over "
                             f"{MAX_NAME_CHARS}; GET /v1/models lists the ones you may use",
                             param="model")
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
        raise InvalidRequest(f"'{name}' must be between {lo:g} and {hi:g}, got {excerpt(v)}",
                             param=name)


def _function_call(fn: Any, p: str) -> None:
    """``{name, arguments}`` of a tool call (or the legacy ``function_call``)."""
    _want(isinstance(fn, dict), p, "an object {name, arguments}", fn)
    _want(_str(fn.get("name")), f"{p}.name", "a string", fn.get("name"))
    _opt(fn, "arguments", f"{p}.arguments", _str, "a string (JSON-encoded arguments)")


def _tool_calls(calls: Any, p: str) -> None:
    _want(isinstance(calls, list), p, "an array of tool calls", calls)
    for j, call in enumerate(calls):
        q = f"{p}[{j}]"
        _want(isinstance(call, dict), q, "an object {id, type, function}", call)
        _opt(call, "id", f"{q}.id", _str, "a string")
        _opt(call, "type", f"{q}.type", _str, "a string")
        _function_call(call.get("function"), f"{q}.function")


def _content_parts(parts: list[Any], p: str) -> None:
    for j, part in enumerate(parts):
        q = f"{p}[{j}]"
        _want(isinstance(part, dict), q, "an object {type, ...}", part)
        kind = part.get("type")
        _want(_str(kind), f"{q}.type", "a string (text, image_url, ...)", kind)
        if kind == "text":
            _want(_str(part.get("text")), f"{q}.text", "a string", part.get("text"))
        elif kind == "image_url":
            img = part.get("image_url")
            _want(_str(img) or (isinstance(img, dict) and _str(img.get("url"))),
                  f"{q}.image_url", "an object {url: string}", img)
        elif kind in ("input_audio", "file"):
            _opt(part, kind, f"{q}.{kind}", lambda v: isinstance(v, dict), "an object")


def _message(m: Any, p: str) -> None:
    _want(isinstance(m, dict), p, "an object {role, content}", m)
    role = m.get("role")
    if not _str(role) or role not in ROLES:
        raise InvalidRequest(
            f"'{p}.role' must be one of {', '.join(sorted(ROLES))}, got {excerpt(role)}",
            param=f"{p}.role")
    _opt(m, "name", f"{p}.name", _str, "a string")
    calls = m.get("tool_calls")
    if calls is not None:
        _tool_calls(calls, f"{p}.tool_calls")
    if m.get("function_call") is not None:
        _function_call(m["function_call"], f"{p}.function_call")
    content = m.get("content")
    if content is None:
        if role not in ("assistant", "function") or not (calls or m.get("function_call")):
            raise InvalidRequest(f"'{p}.content' is required for a {role} message",
                                 param=f"{p}.content")
    else:
        _want(isinstance(content, str | list), f"{p}.content", "a string or an array of parts",
              content)
        if isinstance(content, list):
            _content_parts(content, f"{p}.content")
    if role == "tool" and not _str(m.get("tool_call_id")):
        raise InvalidRequest(f"'{p}.tool_call_id' is required for a tool message (a string)",
                             param=f"{p}.tool_call_id")


_PLAIN_ROLES = frozenset({"system", "developer", "user", "assistant"})
_PLAIN_KEYS = frozenset({"role", "content"})


def _plain_message(m: Any) -> bool:
    """A message of the commonest shape, ``{role, content: string}`` with a role that needs
    nothing else, which ``_message`` would pass: checked without building any text."""
    if m.__class__ is not dict or not m.keys() <= _PLAIN_KEYS:
        return False
    role = m.get("role")
    return role.__class__ is str and role in _PLAIN_ROLES and m.get("content").__class__ is str


def _tools(tools: Any) -> None:
    _want(isinstance(tools, list), "tools", "an array", tools)
    for i, t in enumerate(tools):
        p = f"tools[{i}]"
        _want(isinstance(t, dict), p, "an object", t)
        _opt(t, "type", f"{p}.type", _str, "a string")
        fn = t.get("function")
        _want(isinstance(fn, dict), f"{p}.function", "an object", fn)
        _want(isinstance(fn.get("name"), str) and bool(fn.get("name")), f"{p}.function.name",
              "a non-empty string", fn.get("name"))
        _opt(fn, "description", f"{p}.function.description", _str, "a string")
        _opt(fn, "parameters", f"{p}.function.parameters", lambda v: isinstance(v, dict),
             "an object (a JSON schema)")


def _tool_choice(choice: Any, name: str) -> None:
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise InvalidRequest(f"'{name}' must be one of {', '.join(TOOL_CHOICES)} or "
                                 f"{{type: function, function: {{name}}}}, got {excerpt(choice)}",
                                 param=name)
        return
    _want(isinstance(choice, dict), name, "a string or an object {type, function: {name}}",
          choice)
    _opt(choice, "type", f"{name}.type", _str, "a string")
    _opt(choice, "name", f"{name}.name", _str, "a string")
    _opt(choice, "function", f"{name}.function",
         lambda fn: isinstance(fn, dict) and _str(fn.get("name")), "an object {name: string}")


def _response_format(rf: Any) -> None:
    _want(isinstance(rf, dict), "response_format", "an object", rf)
    kind = rf.get("type")
    if not _str(kind) or kind not in RESPONSE_FORMATS:
        raise InvalidRequest(
            f"'response_format.type' must be {', '.join(RESPONSE_FORMATS[:-1])} or "
            f"{RESPONSE_FORMATS[-1]}, got {excerpt(kind)}", param="response_format.type")
    spec = rf.get("json_schema")
    if kind == "json_schema" or spec is not None:
        _want(isinstance(spec, dict), "response_format.json_schema",
              "an object {name, schema}", spec)
        _opt(spec, "name", "response_format.json_schema.name", _str, "a string")
        _opt(spec, "description", "response_format.json_schema.description", _str, "a string")
        _opt(spec, "schema", "response_format.json_schema.schema",
             lambda v: isinstance(v, dict), "an object (a JSON schema)")


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
        if not _plain_message(m):
            _message(m, f"messages[{i}]")  # checked field by field, errors named
    present = body.keys() & _OPTIONS
    if present:  # what is absent needs no check
        _options(body, present)
    return model


# The optional fields ``check_chat`` checks, in ``_options``
_OPTIONS = frozenset({
    "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p",
    "n", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "seed", "stop",
    "tools", "tool_choice", "function_call", "parallel_tool_calls", "response_format", "user",
    "metadata"})


def _options(body: JSON, present: set[str]) -> None:
    """Check the optional fields of a chat body that are ``present``, in a fixed order (the
    first problem is the one reported)."""
    if "stream" in present:
        _opt(body, "stream", "stream", lambda v: isinstance(v, bool), "a boolean")
    if "stream_options" in present:
        opts = _opt(body, "stream_options", "stream_options", lambda v: isinstance(v, dict),
                    "an object")
        if opts is not None:
            _opt(opts, "include_usage", "stream_options.include_usage",
                 lambda v: isinstance(v, bool), "a boolean")
    for name in ("max_tokens", "max_completion_tokens"):
        if name in present:
            _range(body, name, 1, 10_000_000, integer=True)
    if "temperature" in present:
        _range(body, "temperature", 0, 2)
    if "top_p" in present:
        _range(body, "top_p", 0, 1)
    if "n" in present:
        _range(body, "n", 1, 128, integer=True)
    if "presence_penalty" in present:
        _range(body, "presence_penalty", -2, 2)
    if "frequency_penalty" in present:
        _range(body, "frequency_penalty", -2, 2)
    logprobs = _opt(body, "logprobs", "logprobs", lambda v: isinstance(v, bool), "a boolean") \
        if "logprobs" in present else None
    if "top_logprobs" in present:
        _range(body, "top_logprobs", 0, 20, integer=True)
        if body.get("top_logprobs") is not None and logprobs is not True:
            raise InvalidRequest("'top_logprobs' needs 'logprobs': true; set both, or leave "
                                 "'top_logprobs' out", param="top_logprobs")
    if "seed" in present:
        _opt(body, "seed", "seed", _is_int, "an integer")
    stop = body.get("stop")
    if stop is not None:
        _want(isinstance(stop, str) or (isinstance(stop, list)
                                        and all(isinstance(s, str) for s in stop)),
              "stop", "a string or an array of strings", stop)
    if body.get("tools") is not None:
        _tools(body["tools"])
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], "tool_choice")
    if body.get("function_call") is not None:  # the legacy form of tool_choice
        fc = body["function_call"]
        if not (isinstance(fc, str) and fc in ("none", "auto")):
            _want(isinstance(fc, dict) and _str(fc.get("name")), "function_call",
                  "none, auto or an object {name: string}", fc)
    if "parallel_tool_calls" in present:
        _opt(body, "parallel_tool_calls", "parallel_tool_calls",
             lambda v: isinstance(v, bool), "a boolean")
    if body.get("response_format") is not None:
        _response_format(body["response_format"])
    if "user" in present:
        _opt(body, "user", "user", _str, "a string")
    if "metadata" in present:
        md = _opt(body, "metadata", "metadata", lambda v: isinstance(v, dict), "an object")
        for k, v in (md or {}).items():
            _want(isinstance(v, str), f"metadata.{key_excerpt(k)}", "a string", v)


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
    if fmt is not None and not (_str(fmt) and fmt in ("float", "base64")):
        raise InvalidRequest(f"'encoding_format' must be float or base64, got {excerpt(fmt)}",
                             param="encoding_format")
    _range(body, "dimensions", 1, 65536, integer=True)
    _opt(body, "user", "user", _str, "a string")
    return model
