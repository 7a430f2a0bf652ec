"""Example values for JSON schemas: the mock provider's tool arguments and structured output.

``example(schema, text)`` returns a value that validates against ``schema`` for the shapes
clients send (pydantic's ``model_json_schema``, OpenAI's strict ``json_schema`` formats):
local ``$ref`` into ``$defs``/``definitions`` (or ``#``), ``enum``/``const``, ``type``
(also a list), ``properties``/``required``, ``items``/``prefixItems``/``minItems``/
``maxItems``, ``anyOf``/``oneOf``/``allOf``, nullable types, string ``format``/
``minLength``/``maxLength`` and number bounds. ``pattern`` is not honoured. Values are
deterministic: strings come from ``text`` (the mock's answer), numbers from the bounds.

A recursive ``$ref`` is expanded once along a path; where it would recur the value is
the smallest one the schema allows there (an optional property is left out, a nullable
value is null, an array is empty). A schema that cannot be satisfied that way, a ``$ref``
that does not resolve, or one that would produce more than ``MAX_VALUES`` values raises
:class:`SchemaProblem`, which the provider turns into a 400 naming the schema.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

MAX_VALUES = 10_000  # values in one example (objects, arrays and leaves)
MAX_DEPTH = 64  # nesting of the example (the request body itself nests at most 64)
MAX_ITEMS = 64  # items made for an array with minItems (more than that is refused)
_LARGEST = 1e15  # number bounds beyond this are refused (integers must stay 64-bit)

_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00",
    "duration": "P1D",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "url": "https://example.com/",
}


class SchemaProblem(Exception):
    """The schema cannot be given an example (the message says why)."""


class _Recurs(Exception):
    """Internal: the value would expand a ``$ref`` already being expanded on this path."""


def example(schema: Any, text: str = "", budget: int = MAX_VALUES) -> tuple[Any, int]:
    """A value valid against ``schema`` (see the module docstring) and the number of values
    it holds; raises SchemaProblem, also when it would hold more than ``budget``."""
    maker = _Maker(schema, text, budget)
    try:
        return maker.value(schema, 0), maker.count
    except _Recurs:
        raise SchemaProblem("the schema is recursive with no way to end: every path "
                            "through its $ref cycle is required") from None


class _Maker:
    def __init__(self, root: Any, text: str, budget: int) -> None:
        self.root = root
        self.text = text
        self.budget = budget
        self.count = 0
        self.expanding: list[str] = []

    def _resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise SchemaProblem(f"$ref {ref!r} is not supported: only local references "
                                "('#/$defs/Name') are")
        node = self.root
        for raw in ref[1:].split("/")[1:] if ref != "#" else ():
            key = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise SchemaProblem(f"$ref {ref!r} does not resolve: the schema has no "
                                    f"{key!r} there")
        return node

    def value(self, schema: Any, depth: int) -> Any:
        self.count += 1
        if self.count > self.budget:
            raise SchemaProblem(f"the mock makes at most {MAX_VALUES} values per request "
                                "(all choices together) and this schema needs more; make it "
                                "smaller or lower n")
        if depth > MAX_DEPTH:
            raise SchemaProblem(f"the schema nests deeper than {MAX_DEPTH} levels")
        if schema is True or schema is None:
            return self.leaf_text({})
        if not isinstance(schema, dict):  # `false` or not a schema at all
            raise SchemaProblem("a subschema allows no value (false, or not an object)")
        ref = schema.get("$ref")
        if ref is not None:
            if ref in self.expanding:
                raise _Recurs
            target = self._resolve(ref)
            self.expanding.append(ref)
            try:
                merged = {k: v for k, v in schema.items() if k != "$ref"}
                if isinstance(target, dict) and merged:
                    return self.value({**target, **_siblings(merged)}, depth + 1)
                return self.value(target, depth + 1)
            finally:
                self.expanding.pop()
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return self.first_of(options, schema, depth)
        parts = schema.get("allOf")
        if isinstance(parts, list) and parts:
            return self.all_of(parts, schema, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"]
            if not kinds:
                return None
            try:
                return self.value({**schema, "type": kinds[0]}, depth)
            except _Recurs:
                if "null" in kind:
                    return None
                raise
        if kind == "object" or (kind is None and "properties" in schema):
            return self.obj(schema, depth)
        if kind == "array" or (kind is None and ("items" in schema or "prefixItems" in schema)):
            return self.array(schema, depth)
        if kind == "integer":
            return int(self.number(schema, integer=True))
        if kind == "number":
            return float(self.number(schema, integer=False))
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self.leaf_text(schema)

    def first_of(self, options: list[Any], schema: dict[str, Any], depth: int) -> Any:
        rest = _siblings({k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")})
        non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
        nullable = len(non_null) < len(options)
        recursed = False
        for option in non_null:
            sub = {**rest, **option} if isinstance(option, dict) and rest else option
            try:
                return self.value(sub, depth + 1)
            except _Recurs:
                recursed = True
        if nullable:
            return None
        if recursed:
            raise _Recurs
        raise SchemaProblem("anyOf/oneOf lists no alternative with a possible value")

    def all_of(self, parts: list[Any], schema: dict[str, Any], depth: int) -> Any:
        values = [self.value(p, depth + 1) for p in parts]
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        if all(isinstance(v, dict) for v in values):
            merged: dict[str, Any] = {}
            for v in values:
                merged.update(v)
            if rest.get("properties"):
                merged.update(self.obj(rest, depth))
            return merged
        return values[0]

    def obj(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props = schema.get("properties")
        required = schema.get("required")
        needed = {r for r in required if isinstance(r, str)} if isinstance(required, list) \
            else set()
        out: dict[str, Any] = {}
        for name, sub in (props.items() if isinstance(props, dict) else ()):
            try:
                out[name] = self.value(sub, depth + 1)
            except _Recurs:
                if name in needed:
                    raise
        return out

    def array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        out: list[Any] = []
        if isinstance(prefix, list):
            out = [self.value(p, depth + 1) for p in prefix]
        low = schema.get("minItems")
        low = low if isinstance(low, int) and not isinstance(low, bool) and low > 0 else 0
        if low > MAX_ITEMS:
            raise SchemaProblem(f"minItems {low} is more than the mock makes ({MAX_ITEMS})")
        high = schema.get("maxItems")
        items = schema.get("items")
        want = max(low, 1) if items is not False else len(out)
        if isinstance(high, int) and not isinstance(high, bool):
            want = min(want, max(high, low))
        while len(out) < want:
            try:
                out.append(self.value(items if items is not None else {}, depth + 1))
            except _Recurs:
                if len(out) < low:
                    raise
                break
        return out

    def number(self, schema: dict[str, Any], *, integer: bool) -> float:
        def bound(key: str) -> float | None:
            v = schema.get(key)
            if not isinstance(v, int | float) or isinstance(v, bool):
                return None
            if not math.isfinite(v) or abs(v) > _LARGEST:
                raise SchemaProblem(f"{key} {v!r} is out of the range the mock answers in "
                                    f"(+-{_LARGEST:.0e})")
            return float(v)

        low, high = bound("minimum"), bound("maximum")
        xlow, xhigh = bound("exclusiveMinimum"), bound("exclusiveMaximum")
        step = 1.0 if integer else 0.5
        if xlow is not None and (low is None or xlow >= low):
            low = xlow + step
        if xhigh is not None and (high is None or xhigh <= high):
            high = xhigh - step
        value = low if low is not None else 1.0
        if high is not None and value > high:
            value = high if low is None else (low + high) / 2
        if integer:
            value = float(int(value)) if low is None else float(-int(-value // 1))
        multiple = bound("multipleOf")
        if multiple and multiple > 0:
            value = -(-value // multiple) * multiple
        if not math.isfinite(value) or abs(value) > _LARGEST:
            raise SchemaProblem("no number within the schema's bounds and multipleOf is in the "
                                f"range the mock answers in (+-{_LARGEST:.0e})")
        return value

    def leaf_text(self, schema: dict[str, Any]) -> str:
        fmt = schema.get("format")
        if fmt == "uuid":
            h = hashlib.blake2b(self.text.encode(), digest_size=16).hexdigest()
            value = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"
        elif isinstance(fmt, str) and fmt in _FORMATS:
            value = _FORMATS[fmt]
        else:
            value = self.text[:80] if self.text else "example"
        low, high = schema.get("minLength"), schema.get("maxLength")
        if isinstance(high, int) and not isinstance(high, bool) and high >= 0:
            value = value[:high]
        if isinstance(low, int) and not isinstance(low, bool) and len(value) < low:
            if low > 100_000:
                raise SchemaProblem(f"minLength {low} is more than the mock makes (100000)")
            value = (value or "x").ljust(low, "x")
        return value


def _siblings(schema: dict[str, Any]) -> dict[str, Any]:
    """Keywords beside ``$ref``/``anyOf`` that constrain the value (annotations dropped)."""
    return {k: v for k, v in schema.items()
            if k not in ("description", "title", "default", "examples", "$defs",
                         "definitions", "$schema", "$id", "$comment")}
