"""Leaf module: the text of chat messages and cheap token estimates (no tokenizer download):
about four characters per token.

``content_text`` is the one way keel turns a message's ``content`` into text (OpenAI content
parts, Anthropic content blocks, OpenTelemetry GenAI parts); ``answer_text`` is the text of
a completion's first choice. Estimates are used where the provider reports nothing (the
mock provider), to reserve budget before a call and by the ``max_tokens`` guard scanner.
Real usage from the provider always wins when present. Imports nothing from keel.
"""

from __future__ import annotations

from typing import Any

PER_MESSAGE_OVERHEAD = 4


def estimate_text(text: str) -> int:
    return max(1, (len(text) + 3) // 4) if text else 0


def content_text(content: Any, sep: str = " ", *, key: str = "text",
                 placeholders: bool = False) -> str:
    """The text of a message's ``content``.

    A string is returned as it is. Of a list of parts, the text of each text part (type
    ``text`` or no type; its text under ``key``: ``"text"`` for OpenAI content parts and
    Anthropic content blocks, ``"content"`` for OpenTelemetry GenAI parts) and of each
    refusal part (``{"type": "refusal", "refusal": ...}``) is joined with ``sep``. The
    parts of a message are separate segments, so the default joins them with a space; an
    answer's own text is joined with ``sep=""`` (its parts are one text cut in pieces).
    Other parts (images, audio, files, tool results) are left out, or with
    ``placeholders`` shown as ``[type]``. Anything else is the empty string.
    """
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        text = part.get(key) if kind is None or kind == "text" else \
            part.get("refusal") if kind == "refusal" else None
        if isinstance(text, str):
            parts.append(text)
        elif placeholders:
            parts.append(f"[{kind or 'part'}]")
    return sep.join(parts)


def answer_text(completion: Any) -> str | None:
    """The text of a ``chat.completion``'s answer (``choices[0].message.content``), or None
    when it has none (not captured, an error, a tool call, an embedding)."""
    if not isinstance(completion, dict):
        return None
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    return content_text(content, "") or None


def estimate_messages(messages: list[Any]) -> int:
    total = 0
    for m in messages:
        if not isinstance(m, dict):
            continue
        total += PER_MESSAGE_OVERHEAD + estimate_text(content_text(m.get("content")))
        for call in m.get("tool_calls") or ():
            fn = call.get("function") or {} if isinstance(call, dict) else {}
            total += estimate_text(str(fn.get("name", ""))) + estimate_text(
                str(fn.get("arguments", ""))
            )
    return total + 2
