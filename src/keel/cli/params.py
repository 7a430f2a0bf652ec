"""Option types the commands share, so every command reads a value the same way.

- ``TIME``: every ``--since``/``--until``; the grammar of
  :func:`keel.timeparse.parse_time`, the one the API's ``since``/``until``/
  ``from``/``to`` take (UNIX seconds, ISO 8601, durations back from now such as ``7d``).
- ``STATUS``: a trace status filter: ``ok``, ``error`` or an HTTP status code in ASCII
  digits (``str.isdigit`` also takes ``²`` and ``٣``).

A bad value is click's usage error (exit 2) naming the option and the forms it takes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from keel.timeparse import parse_time

__all__ = ["STATUS", "TIME", "StatusParam", "TimeParam"]

if TYPE_CHECKING:  # generic in recent click releases only
    _FloatParam = click.ParamType[float]
    _StrParam = click.ParamType[str]
else:
    _FloatParam = _StrParam = click.ParamType


class TimeParam(_FloatParam):
    """A point in time as epoch seconds."""

    name = "time"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_time(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class StatusParam(_StrParam):
    """``ok``, ``error`` or an HTTP status code from 100 to 599, as the trace filter takes."""

    name = "status"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        text = str(value).strip()
        if text in ("ok", "error"):
            return text
        if len(text) == 3 and text.isascii() and text.isdigit() and 100 <= int(text) <= 599:
            return text
        self.fail(f"{text[:40]!r} is not a status; use ok, error or an HTTP status code "
                  "such as 429", param, ctx)


TIME = TimeParam()
STATUS = StatusParam()
