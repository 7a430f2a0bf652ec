"""Query and path parameters of the admin API (and the name fields of its JSON bodies),
read one way by every ``/api`` route.

Each reader checks what it is given before anything uses it and raises ``InvalidRequest``
naming the parameter (``param``) and quoting at most an excerpt of the value:

- integers are ASCII digits only (``str.isdigit`` also accepts ``²`` and other Unicode
  digits that ``int()`` refuses) and always within a stated range;
- times go through :func:`keel.timeparse.parse_time` (epoch seconds, ISO dates and
  times, durations back from now) and stay between 1970 and the year 9999;
- text filters, cursors, path ids and name fields are bounded in length and free of
  control characters (PostgreSQL refuses NUL in text; no stored name contains one);
- a position cursor (``A:B``) is two such integers, a status filter a word or an HTTP code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from keel.errors import InvalidRequest, excerpt
from keel.timeparse import in_range, parse_time

__all__ = ["MAX_ID_CHARS", "MAX_TEXT_CHARS", "choice_param", "cursor_param", "int_param",
           "is_ascii_int", "limit_param", "pair_param", "path_param", "status_param",
           "str_field", "str_list_field", "text_param", "time_field", "time_param"]

MAX_TEXT_CHARS = 256  # the widest label column (user, session, model)
MAX_ID_CHARS = 128
_MAX_DIGITS = 18  # below 2**63: fits every integer column of both dialects

Query = Mapping[str, str]


def is_ascii_int(raw: str) -> bool:
    """Whether ``raw`` is a non-negative integer written in ASCII digits that fits 63 bits."""
    return 0 < len(raw) <= _MAX_DIGITS and raw.isascii() and raw.isdigit()


def int_param(q: Query, name: str, default: int | None, *, lo: int, hi: int) -> int | None:
    """An integer from ``lo`` to ``hi``; ``default`` when absent or empty."""
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    if not is_ascii_int(raw) or not lo <= int(raw) <= hi:
        raise InvalidRequest(f"'{name}' must be an integer from {lo} to {hi}, got "
                             f"{excerpt(raw)}", param=name)
    return int(raw)


def limit_param(q: Query, default: int, maximum: int, name: str = "limit") -> int:
    """A page size from 1 to ``maximum``."""
    value = int_param(q, name, default, lo=1, hi=maximum)
    assert value is not None
    return value


def time_param(q: Query, name: str, default: float | None = None, *,
               now: float | None = None) -> float | None:
    """A point in time as epoch seconds (see :func:`parse_time` for the forms taken)."""
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse_time(raw, now=now)
    except ValueError as exc:
        raise InvalidRequest(f"'{name}': {exc}", param=name) from None


def time_field(body: Mapping[str, Any], name: str, *, now: float | None = None) -> float | None:
    """A point in time in a JSON body: epoch seconds as a number, or any form
    :func:`parse_time` reads as a string; None when absent."""
    v = body.get(name)
    if v is None:
        return None
    try:
        if isinstance(v, int | float) and not isinstance(v, bool):
            return in_range(float(v), v)
        if isinstance(v, str):
            return parse_time(v, now=now)
    except ValueError as exc:
        raise InvalidRequest(f"'{name}': {exc}", param=name) from None
    raise InvalidRequest(f"'{name}' must be a time (epoch seconds or a string such as "
                         f"2026-11-01 or 7d), got {excerpt(v)}", param=name)


def _check_text(value: str, name: str, max_len: int, what: str) -> str:
    if len(value) > max_len:
        raise InvalidRequest(f"'{name}' is {len(value)} characters long, over the limit of "
                             f"{max_len}; {what}", param=name)
    if not value.isprintable():
        raise InvalidRequest(f"'{name}' must not contain control characters, got "
                             f"{excerpt(value)}", param=name)
    return value


def text_param(q: Query, name: str, max_len: int = MAX_TEXT_CHARS) -> str | None:
    """A filter value (a feature, team or model name...); None when absent or empty."""
    raw = q.get(name)
    if not raw:
        return None
    return _check_text(raw, name, max_len, "no stored value is longer")


def status_param(q: Query, name: str, words: tuple[str, ...]) -> str | None:
    """One of ``words`` or an HTTP status code from 100 to 599 (as the code, written without
    leading zeros); None when absent or empty."""
    raw = q.get(name)
    if not raw or raw in words:
        return raw or None
    if is_ascii_int(raw) and 100 <= int(raw) <= 599:
        return str(int(raw))
    raise InvalidRequest(f"'{name}' must be {', '.join(words)} or an HTTP status code (100 to "
                         f"599), got {excerpt(raw)}", param=name)


def choice_param(q: Query, name: str, choices: tuple[str, ...]) -> str | None:
    """One of ``choices``; None when absent or empty."""
    raw = q.get(name)
    if not raw:
        return None
    if raw not in choices:
        raise InvalidRequest(f"'{name}' must be one of {', '.join(choices)}, got "
                             f"{excerpt(raw)}", param=name)
    return raw


def cursor_param(q: Query, name: str = "cursor") -> str | None:
    """The ``next_cursor`` a previous page returned (an id); None when absent or empty."""
    raw = q.get(name)
    if not raw:
        return None
    if len(raw) > MAX_ID_CHARS or not raw.isascii() or not raw.isprintable():
        raise InvalidRequest(f"'{name}' must be the next_cursor of the previous page, got "
                             f"{excerpt(raw)}", param=name)
    return raw


def pair_param(q: Query, name: str, form: str) -> tuple[int, int] | None:
    """A position of two integers ``A:B`` (each at most 9 ASCII digits) that a previous page
    returned as ``next_<name>``; None when absent or empty. ``form`` names the parts for the
    error (``CASE_IDX:REPEAT``)."""
    raw = q.get(name)
    if not raw:
        return None
    a, sep, b = raw.partition(":")
    if not (sep and is_ascii_int(a) and is_ascii_int(b) and max(len(a), len(b)) <= 9):
        raise InvalidRequest(f"'{name}' must be {form}, as in next_{name}", param=name)
    return int(a), int(b)


def path_param(request: Request, name: str, max_len: int = MAX_ID_CHARS) -> str:
    """A ``{name}`` of the route's path: an id or a name, bounded and printable."""
    return _check_text(request.path_params[name], name, max_len, "no id or name is longer")


# --- fields of JSON bodies ------------------------------------------------------------------


def str_field(body: Mapping[str, Any], name: str, max_len: int = MAX_TEXT_CHARS, *,
              one_line: bool = True) -> str | None:
    """An optional string field of an admin body: a name (``one_line``: no control
    characters) or a free text (newlines allowed, no NUL), at most ``max_len`` long."""
    v = body.get(name)
    if v is None:
        return None
    if not isinstance(v, str):
        raise InvalidRequest(f"'{name}' must be a string, got {excerpt(v)}", param=name)
    if one_line:
        return _check_text(v, name, max_len, "send a shorter one")
    if len(v) > max_len:
        raise InvalidRequest(f"'{name}' is {len(v)} characters long, over the limit of "
                             f"{max_len}; send a shorter one", param=name)
    if "\x00" in v:
        raise InvalidRequest(f"'{name}' must not contain NUL characters", param=name)
    return v


def str_list_field(body: Mapping[str, Any], name: str, max_len: int = MAX_TEXT_CHARS,
                   max_items: int = 1000) -> list[str] | None:
    """An optional array of non-empty one-line strings."""
    v = body.get(name)
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise InvalidRequest(f"'{name}' must be an array of non-empty strings, got "
                             f"{excerpt(v)}", param=name)
    if len(v) > max_items:
        raise InvalidRequest(f"'{name}' has {len(v)} items, over the limit of {max_items}",
                             param=name)
    for i, x in enumerate(v):
        _check_text(x, f"{name}[{i}]", max_len, "send a shorter one")
    return list(v)
