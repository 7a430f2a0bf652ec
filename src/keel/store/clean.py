"""Values that always fit their columns: a trace row can be stored whatever the request held.

Anything a client sends may end up in a trace: a 300-character ``user``, a body nested
deeper than a JSON encoder will write, a lone surrogate, a token count past 2**31, NaN.
The store must never refuse a row for its content (a refused batch would take other
tenants' traces with it), so every value is made to fit before it is written:

- strings are cut to their column's length and made valid UTF-8 without NUL;
- integers are clamped to the column's range, floats made finite;
- JSON that cannot be serialised (too deep, invalid text, not JSON at all) or is larger
  than ``MAX_JSON_CHARS`` is replaced by a marked, truncated, safe form
  (``{"keel_unstorable": {"reason": ..., "excerpt": ...}}``), so the numeric row and
  everything else about the trace are kept.

The checks are cheap on the common path (ASCII strings of ordinary length pass through
after a length and an ``isascii`` check).
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import sqlalchemy as sa

MAX_JSON_CHARS = 16 * 1024 * 1024  # one stored request or response, serialised
MAX_TEXT_CHARS = 8 * 1024  # free text in the numeric row (error messages)
EXCERPT_CHARS = 2048  # what an unstorable value keeps of itself
UNSTORABLE = "keel_unstorable"

_INT32 = 2**31 - 1
_INT64 = 2**63 - 1


def clean_str(value: Any, limit: int) -> str | None:
    """``value`` as valid UTF-8 text of at most ``limit`` characters (None stays None)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit]
    if "\x00" in text:  # PostgreSQL text cannot hold NUL
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: not text any database can hold
            text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def clean_int(value: Any, bound: int) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return max(-bound, min(bound, n))


def clean_float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return f if math.isfinite(f) else 0.0


def dumps_json(value: Any) -> str:
    """``value`` serialised, or its marked safe form when it cannot be (or is too large)."""
    try:
        text = orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError, ValueError, OverflowError) as exc:
        return unstorable(value, _reason(exc))
    if len(text) > MAX_JSON_CHARS:
        return unstorable(value, f"serialised size {len(text)} characters is over the "
                                 f"{MAX_JSON_CHARS}-character limit for stored content")
    return text


def is_unstorable(text: str | None) -> bool:
    return bool(text) and text.startswith('{"' + UNSTORABLE + '"')  # type: ignore[union-attr]


def unstorable(value: Any, reason: str) -> str:
    marker = {UNSTORABLE: {"reason": reason, "excerpt": excerpt(value, EXCERPT_CHARS)}}
    return orjson.dumps(marker).decode()


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"not serialisable as JSON: {text[:200]}"


def excerpt(value: Any, limit: int) -> str:
    """A JSON-like rendering of ``value`` cut at ``limit`` characters: iterative (any
    depth), never raises, valid text (surrogates escaped)."""
    out: list[str] = []
    size = 0
    # A stack of pending tokens: either a value to render or a literal string to emit.
    stack: list[tuple[bool, Any]] = [(False, value)]
    while stack and size < limit:
        literal, item = stack.pop()
        if literal:
            piece = item
        elif isinstance(item, dict):
            piece = "{"
            parts: list[tuple[bool, Any]] = [(True, "}")]
            for i, (k, v) in enumerate(reversed(list(item.items()))):
                parts.append((False, v))
                parts.append((True, _quote(str(k)) + ": "))
                if i < len(item) - 1:
                    parts.append((True, ", "))
            stack.extend(parts)
        elif isinstance(item, list | tuple):
            piece = "["
            stack.append((True, "]"))
            for i, v in enumerate(reversed(item)):
                stack.append((False, v))
                if i < len(item) - 1:
                    stack.append((True, ", "))
        elif isinstance(item, str):
            piece = _quote(item[:limit])
        elif item is None or isinstance(item, bool | int):
            piece = "null" if item is None else ("true" if item is True else
                                                 "false" if item is False else str(item))
        elif isinstance(item, float):
            piece = repr(item) if math.isfinite(item) else "null"
        else:
            piece = _quote(type(item).__name__)
        out.append(piece)
        size += len(piece)
    text = "".join(out)
    if len(text) > limit or stack:
        text = text[:limit] + "…"
    return text


def _quote(s: str) -> str:
    try:
        return orjson.dumps(s).decode()
    except orjson.JSONEncodeError:
        return orjson.dumps(s.encode("utf-8", "replace").decode("utf-8")).decode()


class RowFitter:
    """Fits rows of one table: strings to their lengths, integers to their range, floats
    finite. JSON columns are serialised by the caller with ``dumps_json``. Values that
    already fit (nearly all of them) cost a type check and a comparison each."""

    def __init__(self, table: sa.Table, text_limit: int = MAX_TEXT_CHARS) -> None:
        strs: list[tuple[int, int]] = []
        ints: list[tuple[int, int]] = []
        floats: list[int] = []
        for i, col in enumerate(table.columns):
            t = col.type
            if isinstance(t, sa.JSON):
                continue
            if isinstance(t, sa.Text):
                strs.append((i, text_limit))
            elif isinstance(t, sa.String):
                strs.append((i, t.length or text_limit))
            elif isinstance(t, sa.Boolean):
                continue
            elif isinstance(t, sa.Integer):
                ints.append((i, _INT64 if isinstance(t, sa.BigInteger) else _INT32))
            elif isinstance(t, sa.Float):
                floats.append(i)
        self.strs, self.ints, self.floats = tuple(strs), tuple(ints), tuple(floats)

    def fit(self, values: tuple[Any, ...] | list[Any]) -> tuple[Any, ...]:
        row = list(values)
        for i, n in self.strs:
            v = row[i]
            if v is not None and (type(v) is not str or len(v) > n or not v.isascii()
                                  or "\x00" in v):
                row[i] = clean_str(v, n)
        for i, b in self.ints:
            v = row[i]
            if v is not None and (type(v) is not int or not -b <= v <= b):
                row[i] = clean_int(v, b)
        for i in self.floats:
            v = row[i]
            if v is not None and (type(v) is not float or v - v != 0.0):
                row[i] = clean_float(v)
        return tuple(row)
