"""Leaf module: a small JSON Schema validator for the subset that the ``json-schema`` eval
scorer and the ``json_schema`` guard scanner support.

Supported keywords: ``type`` (a name or a list of names: object, array, string, number,
integer, boolean, null), ``properties``, ``required``, ``additionalProperties`` (true or
false only), ``items`` (a single schema), ``enum``, ``const``, ``minimum``, ``maximum``,
``minLength``, ``maxLength``, ``minItems``, ``maxItems``, ``pattern`` (``re.search``).
Annotations that never affect validation (``title``, ``description``, ``$schema``,
``$id``, ``default``, ``examples``, ``$comment``) are accepted. Any other keyword
(``oneOf``, ``$ref``, ``format``, ...) is rejected by :func:`check_schema`, so nothing in a
schema is silently ignored.
"""

from __future__ import annotations

import re
from typing import Any

from keel.plugins import LocatedConfigError

SUPPORTED = ("type", "properties", "required", "additionalProperties", "items", "enum",
             "const", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems",
             "pattern")
ANNOTATIONS = ("title", "description", "$schema", "$id", "default", "examples", "$comment")
TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")


class SchemaError(ValueError):
    """The schema itself is unusable; ``path`` says where in it (e.g. ``properties.age``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def _sub(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check_schema(schema: Any, path: str = "") -> None:
    """Raise SchemaError if ``schema`` uses anything outside the supported subset."""
    if not isinstance(schema, dict):
        raise SchemaError(path, f"a schema must be a mapping, got {schema!r}")
    for key, value in schema.items():
        here = _sub(path, key)
        if key in ANNOTATIONS:
            continue
        if key not in SUPPORTED:
            raise SchemaError(here, f"keyword '{key}' is not supported; supported: "
                                    f"{', '.join(SUPPORTED)}")
        if key == "type":
            names = value if isinstance(value, list) else [value]
            if not names or any(n not in TYPES for n in names):
                raise SchemaError(here, f"one of {', '.join(TYPES)} (or a list of them)")
        elif key == "properties":
            if not isinstance(value, dict):
                raise SchemaError(here, "a mapping of property name to schema")
            for name, sub in value.items():
                check_schema(sub, _sub(here, str(name)))
        elif key == "required":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SchemaError(here, "a list of property names")
        elif key == "additionalProperties":
            if not isinstance(value, bool):
                raise SchemaError(here, "only true or false is supported (not a schema)")
        elif key == "items":
            if not isinstance(value, dict):
                raise SchemaError(here, "a single schema (tuple form is not supported)")
            check_schema(value, here)
        elif key == "enum":
            if not isinstance(value, list) or not value:
                raise SchemaError(here, "a non-empty list of allowed values")
        elif key in ("minimum", "maximum"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SchemaError(here, "a number")
        elif key in ("minLength", "maxLength", "minItems", "maxItems"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SchemaError(here, "a whole number >= 0")
        elif key == "pattern":
            if not isinstance(value, str):
                raise SchemaError(here, "a regular expression string")
            try:
                re.compile(value)
            except re.error as exc:
                raise SchemaError(here, f"not a valid regular expression: {exc}") from None


def schema_option(schema: dict[str, Any], error: type[LocatedConfigError],
                  hint: str = "") -> dict[str, Any]:
    """``schema``, the ``schema:`` option of a scorer or scanner entry, once
    :func:`check_schema` accepts it; else ``error`` on the key ``schema.<path>``, its message
    the SchemaError's followed by ``hint``."""
    try:
        check_schema(schema)
    except SchemaError as exc:
        key = f"schema.{exc.path}" if exc.path else "schema"
        raise error(exc.message + hint, key=key) from None
    return schema


def _is_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` equals ``1.0``, containers compare deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return bool(a == b)


def validate(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Every violation of ``schema`` by ``value``, as ``"$.path: what"`` strings."""
    errors: list[str] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, n) for n in names):
            got = "null" if value is None else type(value).__name__
            return [f"{path}: expected {' or '.join(names)}, got {got}"]
    if "const" in schema and not json_equal(value, schema["const"]):
        errors.append(f"{path}: must be {schema['const']!r}, got {value!r}")
    if "enum" in schema and not any(json_equal(value, e) for e in schema["enum"]):
        errors.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} is below minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} is above maximum {schema['maximum']}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(f"{path}: length {len(value)} is below minLength "
                          f"{schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: length {len(value)} is above maxLength "
                          f"{schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: {value!r} does not match pattern {schema['pattern']!r}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{path}: {len(value)} items, fewer than minItems "
                          f"{schema['minItems']}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: {len(value)} items, more than maxItems "
                          f"{schema['maxItems']}")
        if "items" in schema:
            for i, item in enumerate(value):
                errors.extend(validate(item, schema["items"], f"{path}[{i}]"))
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}: missing required property '{name}'")
        for name, sub in props.items():
            if name in value:
                errors.extend(validate(value[name], sub, f"{path}.{name}"))
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                errors.append(f"{path}: unexpected propert{'y' if len(extra) == 1 else 'ies'} "
                              f"{', '.join(extra)}")
    return errors
