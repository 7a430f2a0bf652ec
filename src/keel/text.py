"""Leaf module: the text of chat messages and cheap token estimates (no tokenizer download):
about four characters per token.

Used where the provider reports nothing (the mock provider), to reserve budget before a call
and by the ``max_tokens`` guard scanner. Real usage from the provider always wins when
present. Imports nothing from keel.
"""

from __future__ import annotations

from typing import Any

PER_MESSAGE_OVERHEAD = 4


def estimate_text(text: str) -> int:
    return max(1, (len(text) + 3) // 4) if text else 0


def content_text(content: Any) -> str:
    """The text of an OpenAI message ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return " ".join(parts)
    return ""


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
