"""Leaf module: ``{{name}}`` placeholders, the one template syntax of prompts and scorers.

A placeholder is ``{{name}}``, with optional spaces inside the braces; a name is a letter or
``_`` followed by letters, digits, ``_``, ``.`` or ``-``. Everything else is literal text and
is kept as written: ``{%``, ``{#``, single braces, ``{{"a": 1}}`` or ``{{ x | upper }}``
(which is not a name). A name is looked up as given, then, when it has dots, as a path into
mappings (``{{user.name}}``). Strings are inserted as they are, other values as JSON.
There are no expressions, filters or blocks: values are data and a template runs no code.

A ``Template`` is compiled once (prompt versions when they are loaded, scorers when they are
built) and rendered per request or per case by joining its pieces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")


class MissingVariable(LookupError):
    """A placeholder whose name the values do not have (``available``: the names they do)."""

    def __init__(self, name: str, available: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.available = available


_ABSENT = object()


def _lookup(values: Mapping[str, Any], name: str) -> Any:
    value = values.get(name, _ABSENT)
    if value is not _ABSENT or "." not in name:
        return value
    node: Any = values
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


class Template:
    """A text with ``{{name}}`` placeholders, split once into literal pieces and names."""

    __slots__ = ("_pieces", "names", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        # [literal, name, literal, name, ..., literal]
        self._pieces: tuple[str, ...] = tuple(PLACEHOLDER.split(text))
        self.names: tuple[str, ...] = tuple(dict.fromkeys(self._pieces[1::2]))

    @property
    def static(self) -> bool:
        """Whether the text has no placeholder (it renders as itself)."""
        return not self.names

    def missing(self, values: Mapping[str, Any]) -> list[str]:
        """The names, in order of first use, that ``values`` cannot fill."""
        return [n for n in self.names if _lookup(values, n) is _ABSENT]

    def render(self, values: Mapping[str, Any],
               escape: Callable[[str], str] | None = None) -> str:
        """The text with every placeholder filled from ``values`` (each inserted text passed
        through ``escape`` when given, e.g. ``re.escape``); raises :class:`MissingVariable`
        for the first name it cannot fill."""
        pieces = self._pieces
        if len(pieces) == 1:
            return self.text
        out = list(pieces)
        for i in range(1, len(pieces), 2):
            value = _lookup(values, pieces[i])
            if value is _ABSENT:
                raise MissingVariable(pieces[i], sorted(values))
            text = _text(value)
            out[i] = escape(text) if escape is not None else text
        return "".join(out)
