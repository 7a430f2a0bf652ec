"""Reading a judge's reply. Every judge is asked for one JSON object; the reply is read
leniently (a bare object, one inside a ```json fence or surrounded by prose, numbers written
as strings, and a plain ``Score: 4/5`` line are all accepted) but never guessed: a reply
without a usable verdict, or with a score outside the scale, raises :class:`Unreadable`."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from keel.text import content_text

MAX_QUOTED = 500  # characters of a judge's reply quoted in an error


class Unreadable(Exception):
    """A judge's reply that holds no usable verdict (the message says what is wrong)."""


_FENCE = re.compile(r"```[A-Za-z]*[ \t]*\n?(.*?)```", re.DOTALL)
_NUM = r"[-+]?\d+(?:\.\d+)?"
_NUMBER_TEXT = re.compile(rf"^\s*({_NUM})\s*(?:(?:/|out of)\s*({_NUM}))?\s*$", re.IGNORECASE)
_LABEL = r"[\"'*]*\s*(?:[:=]|is)\s*[\"'*]*\s*"  # `score: `, `"score": "`, `**Score:** `
# "Score: 4/5" starting a line or a sentence and ending one (never a number picked out of
# the middle of prose)
_SCORE_TEXT = re.compile(
    rf"(?:^|(?<=[.;!?])\s+)[\s*_#>-]*(?:(?:the|my|final|overall)\s+)*score\b{_LABEL}"
    rf"({_NUM})(?:\s*(?:/|out of)\s*({_NUM}))?[\s*_]*(?:[.;]|$)",
    re.IGNORECASE | re.MULTILINE)
_REASON_TEXT = re.compile(rf"\breason(?:ing)?\b{_LABEL}(.+)", re.IGNORECASE)
_WINNER_TEXT = re.compile(
    rf"\b(?:winner|better answer|verdict)\b{_LABEL}(?:answer\s+)?(A|B|tie)\b", re.IGNORECASE)
_SUPPORTED_TEXT = (
    re.compile(rf"\bsupported\b{_LABEL}(\d+)\s*(?:/|of|out of)\s*(\d+)", re.IGNORECASE),
    re.compile(r"(\d+)\s*(?:/|of|out of)\s*(\d+)\s+claims?\s+(?:are\s+|were\s+)?supported",
               re.IGNORECASE),
    re.compile(rf"\bscore\b{_LABEL}(\d+)\s*(?:/|out of)\s*(\d+)", re.IGNORECASE),
)


def quote(text: str, limit: int = MAX_QUOTED) -> str:
    """The judge's reply for an error message: one line, truncated."""
    text = text.strip().replace("\r", "").replace("\n", "\\n")
    if len(text) > limit:
        return f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text


def json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (fenced blocks first), keys lower-cased."""
    decoder = json.JSONDecoder()
    for chunk in [*(m.group(1) for m in _FENCE.finditer(text)), text]:
        start, tries = chunk.find("{"), 0
        while start != -1 and tries < 50:
            try:
                value, _ = decoder.raw_decode(chunk, start)
            except ValueError:
                pass
            else:
                if isinstance(value, dict):
                    return {str(k).strip().lower(): v for k, v in value.items()}
            start, tries = chunk.find("{", start + 1), tries + 1
    return None


def number(value: Any) -> tuple[float, float | None] | None:
    """A number, or a string like ``"4"`` or ``"4/5"``: (value, denominator or None)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return (float(value), None) if math.isfinite(value) else None
    if isinstance(value, str):
        match = _NUMBER_TEXT.match(value)
        if match:
            return float(match[1]), float(match[2]) if match[2] else None
    return None


def _reason(obj: dict[str, Any] | None, raw: str) -> str:
    if obj is not None:
        for key in ("reason", "reasoning", "explanation", "rationale"):
            value = obj.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return ""
    match = _REASON_TEXT.search(raw)
    return match[1].strip().strip("\"'*").strip() if match else ""


def read_score(raw: str, low: float, high: float) -> tuple[float, str]:
    """The (score, reason) in a judge's reply on the scale low..high."""
    obj = json_object(raw)
    found: tuple[float, float | None] | None = None
    if obj is not None and "score" in obj:
        found = number(obj["score"])
        if found is None:
            raise Unreadable(f"'score' is not a number: {obj['score']!r}")
    if found is None and obj is None and "{" not in raw:  # a JSON reply cut short: no guess
        match = _SCORE_TEXT.search(raw)
        if match:
            found = float(match[1]), float(match[2]) if match[2] else None
    if found is None:
        raise Unreadable("no score in the reply")
    value, out_of = found
    if out_of is not None and out_of != high:
        raise Unreadable(f"scored {value:g}/{out_of:g}, but the scale is {low:g} to {high:g}")
    if not low <= value <= high:
        raise Unreadable(f"score {value:g} is outside the scale {low:g} to {high:g}")
    return value, _reason(obj, raw)


def _side(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip().strip("\"'*.").strip().lower()
    text = text.removeprefix("answer").strip()
    if text in ("a", "b"):
        return text.upper()
    if text in ("tie", "draw", "equal", "both", "neither", "same"):
        return "tie"
    return None


def read_winner(raw: str) -> tuple[str, str]:
    """The ("A" | "B" | "tie", reason) in a pairwise judge's reply."""
    obj = json_object(raw)
    if obj is not None:
        for key in ("winner", "better", "verdict", "choice"):
            if key in obj:
                side = _side(obj[key])
                if side is None:
                    raise Unreadable(f"'{key}' must be \"A\", \"B\" or \"tie\", "
                                     f"got {obj[key]!r}")
                return side, _reason(obj, raw)
    match = _WINNER_TEXT.search(raw)
    if match is None:
        raise Unreadable("no winner (\"A\", \"B\" or \"tie\") in the reply")
    side = _side(match[1])
    assert side is not None
    return side, _reason(obj, raw)


def _count(value: Any, key: str) -> int:
    found = number(value)
    if found is None or found[1] is not None or found[0] < 0 or not found[0].is_integer():
        raise Unreadable(f"'{key}' must be a whole number >= 0, got {value!r}")
    return int(found[0])


def read_claims(raw: str) -> tuple[int, int, list[str], str]:
    """(claims, supported, unsupported claims, reason) in a groundedness judge's reply."""
    obj = json_object(raw)
    if obj is not None and "claims" in obj:
        claims: Any = obj["claims"]
        listed = obj.get("unsupported")
        unsupported = [str(c) for c in listed] if isinstance(listed, list) else []
        if isinstance(claims, list):
            if all(isinstance(c, dict) for c in claims) and "supported" not in obj:
                flags = [c.get("supported") for c in claims]
                if not all(isinstance(f, bool) for f in flags):
                    raise Unreadable("each claim needs \"supported\": true or false")
                unsupported = unsupported or [str(c.get("claim", c)) for c, f
                                              in zip(claims, flags, strict=True) if not f]
                return len(claims), sum(1 for f in flags if f), unsupported, _reason(obj, raw)
            claims = len(claims)
        total = _count(claims, "claims")
        if "supported" not in obj:
            raise Unreadable("'supported' (the number of supported claims) is missing")
        supported = _count(obj["supported"], "supported")
        if supported > total:
            raise Unreadable(f"{supported} claims supported out of {total}")
        return total, supported, unsupported, _reason(obj, raw)
    for pattern in _SUPPORTED_TEXT:
        match = pattern.search(raw)
        if match:
            supported, total = int(match[1]), int(match[2])
            if supported > total:
                raise Unreadable(f"{supported} claims supported out of {total}")
            return total, supported, [], _reason(obj, raw)
    raise Unreadable("no claim counts (\"claims\" and \"supported\") in the reply")


def reply_text(body: dict[str, Any]) -> tuple[str, str | None]:
    """(the text of a chat completion, its finish_reason)."""
    choices = body.get("choices") or [{}]
    first = choices[0] if isinstance(choices[0], dict) else {}
    text = content_text((first.get("message") or {}).get("content"), "", placeholders=True)
    return text, first.get("finish_reason")
