"""A request's messages and an answer's choices as the console shows them: role and text
(``keel.text.content_text``, other parts shown as ``[type]``), tool calls as sent."""

from __future__ import annotations

from typing import Any

from keel.text import content_text

__all__ = ["choices", "messages"]


def messages(request: Any) -> list[dict[str, Any]]:
    """The request's messages (OpenAI's ``messages``, the Responses API's ``input``, and
    Anthropic's top-level ``system``) as role, text, name and tool calls."""
    if not isinstance(request, dict):
        return []
    out: list[dict[str, Any]] = []
    system = request.get("system")  # Anthropic's top-level system prompt
    if isinstance(system, str) and system:
        out.append({"role": "system", "text": system, "name": None, "tool_calls": None})
    for m in request.get("messages") or request.get("input") or []:
        if isinstance(m, dict):
            out.append({"role": str(m.get("role", "?")),
                        "text": content_text(m.get("content"), "\n", placeholders=True),
                        "name": m.get("name"), "tool_calls": m.get("tool_calls")})
    return out


def choices(response: Any) -> list[dict[str, Any]]:
    """The answer's choices (or an Anthropic message's content) as text, tool calls and
    finish reason."""
    if not isinstance(response, dict):
        return []
    out: list[dict[str, Any]] = []
    for choice in response.get("choices") or []:
        choice = choice if isinstance(choice, dict) else {}
        msg = choice.get("message") or {}
        out.append({"text": content_text(msg.get("content"), "", placeholders=True),
                    "tool_calls": msg.get("tool_calls"),
                    "finish_reason": choice.get("finish_reason")})
    if not out and isinstance(response.get("content"), list):  # Anthropic's shape
        out.append({"text": content_text(response["content"], "", placeholders=True),
                    "tool_calls": None, "finish_reason": response.get("stop_reason")})
    return out
