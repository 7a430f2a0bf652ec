"""What a cached answer is keyed on, and which requests may use the semantic cache.

The exact key is a hash of a canonical form (orjson, sorted keys) of every request field
that can change the answer. Fields are *excluded* by name (``stream``, ``user``, ...)
rather than included by name, so a parameter keel does not know yet (a new OpenAI field,
a provider extension) is part of the key: an unknown field costs a cache miss, never a
wrong answer.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

import orjson

from keel.text import content_text
from keel.types import JSON

# Fields that do not change what the model answers. ``model`` is replaced by the namespace.
IGNORED_FIELDS = frozenset({
    "model",              # the namespace (route or model name the client asked for) stands in
    "stream",             # same answer, other framing
    "stream_options",
    "user",               # end-user id, for abuse tracking upstream
    "metadata",           # tags stored with the completion upstream
    "store",              # whether the provider keeps the completion
    "prompt_cache_key",   # upstream prompt-cache routing hint
    "safety_identifier",  # successor of ``user``
    "service_tier",       # price/latency tier, same model
})
# Sampling numbers: 1 and 1.0 mean the same thing, so they must hash the same.
_FLOAT_FIELDS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})
_SYSTEM_ROLES = frozenset({"system", "developer"})
_KEY_VERSION = "keel-cache/1"


class _MultiTurn(Protocol):
    @property
    def multi_turn(self) -> bool: ...


def _hash(obj: Any) -> str:
    try:
        data = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError: e.g. an integer beyond 64 bits
        data = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def output_params(body: JSON) -> JSON:
    """The body without the fields that do not change the answer; ``null`` means unset."""
    out: JSON = {}
    for name, value in body.items():
        if name in IGNORED_FIELDS or value is None:
            continue
        if name in _FLOAT_FIELDS and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        out[name] = value
    return out


def exact_key(namespace: str, body: JSON) -> str:
    """A 40-hex-char key for the exact cache, stable across processes and key order."""
    return _hash([_KEY_VERSION, "exact", namespace, output_params(body)])


def semantic_params_key(namespace: str, body: JSON) -> str:
    """Everything a semantic hit must share exactly: the namespace, the output-affecting
    parameters other than the conversation, and the system/developer messages.

    System prompts are matched exactly here rather than embedded: a long shared system
    prompt would dominate the embedding and make different questions look alike, and a
    different system prompt legitimately calls for a different answer.
    """
    params = output_params(body)
    messages = params.pop("messages", None)
    system = [m for m in messages if isinstance(m, dict) and m.get("role") in _SYSTEM_ROLES] \
        if isinstance(messages, list) else []
    return _hash([_KEY_VERSION, "semantic", namespace, params, system])


def _text_only(content: Any) -> bool:
    if content is None or isinstance(content, str):
        return True
    if isinstance(content, list):
        return all(isinstance(p, dict) and p.get("type", "text") == "text"
                   and isinstance(p.get("text"), str) for p in content)
    return False


def semantic_eligible(body: JSON, spec: _MultiTurn) -> bool:
    """May this request read from / write to the semantic cache?

    By default only single-turn traffic: one user message, optionally preceded by
    system/developer messages, text only. ``spec.multi_turn`` also admits user/assistant
    conversations (ending with a user message). Never: tools or tool traffic, ``n`` > 1,
    images/audio/files (the embedding sees only text, so it cannot tell them apart).
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return False
    if body.get("tools") or body.get("functions") or body.get("n") not in (None, 1):
        return False
    multi_turn = bool(spec.multi_turn)
    users = 0
    for m in messages:
        if not isinstance(m, dict) or m.get("tool_calls") or m.get("function_call"):
            return False
        role = m.get("role")
        if role == "user":
            users += 1
        elif role not in _SYSTEM_ROLES and not (multi_turn and role == "assistant"):
            return False  # tool/function results, or assistant turns in single-turn mode
        if not _text_only(m.get("content")):
            return False
    if users == 0 or (users > 1 and not multi_turn):
        return False
    if messages[-1].get("role") != "user":
        return False
    return bool(semantic_text(body).strip())


def semantic_text(body: JSON) -> str:
    """The text to embed: the user message; for a multi-turn conversation, each user and
    assistant turn on its own line, prefixed with its role. System and developer
    messages are not embedded; they are part of ``semantic_params_key``."""
    turns = [(m.get("role"), content_text(m.get("content"))) for m in body.get("messages") or ()
             if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
    if len(turns) == 1:
        return turns[0][1]
    return "\n".join(f"{role}: {text}" for role, text in turns)


def is_cacheable(completion: Any) -> bool:
    """A complete, successful ``chat.completion`` that may be replayed to another client:
    at least one choice, every choice finished, none stopped by a content filter."""
    if not isinstance(completion, dict) or completion.get("error") is not None:
        return False
    if completion.get("object", "chat.completion") != "chat.completion":
        return False
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    for choice in choices:
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            return False
        if choice.get("finish_reason") in (None, "content_filter"):
            return False
    return True
