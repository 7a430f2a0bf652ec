"""Structured-output scorers: is-json, json-schema, tool-call."""

from __future__ import annotations

from typing import Any

import orjson

from keel.evals.scorers.base import Score, ScoreInput, ScorerConfigError, register_scorer
from keel.evals.scorers.support import BaseScorer, Options, Template, clip, fill
from keel.json_schema import json_equal, schema_option, validate


def parse_answer(text: str) -> tuple[Any, str | None]:
    """The answer parsed as JSON, or ``(None, why not)``."""
    stripped = text.strip()
    if not stripped:
        return None, "answer is empty, not JSON"
    try:
        return orjson.loads(stripped), None
    except orjson.JSONDecodeError as exc:
        hint = " (it is wrapped in a ``` code fence)" if stripped.startswith("```") else ""
        return None, f"answer is not valid JSON{hint}: {exc}"


@register_scorer("is-json")
class IsJson(BaseScorer):
    """The answer (surrounding whitespace ignored) parses as JSON: value 1, else 0."""

    def configure(self, opts: Options) -> None:
        pass

    def evaluate(self, inp: ScoreInput) -> Score:
        value, why_not = parse_answer(inp.output_text)
        kind = "null" if value is None else type(value).__name__
        return self.check(why_not is None, f"answer is valid JSON ({kind})", why_not or "")


@register_scorer("json-schema")
class JsonSchema(BaseScorer):
    """The answer parses as JSON and validates against ``schema`` (an inline mapping).

    See :mod:`keel.json_schema` for the supported keywords; any other keyword is a
    config error naming it.
    """

    options = ("schema",)

    def configure(self, opts: Options) -> None:
        schema = opts.mapping("schema", "{type: object, required: [answer]}")
        assert schema is not None
        self.schema = schema_option(schema, ScorerConfigError)

    def evaluate(self, inp: ScoreInput) -> Score:
        value, why_not = parse_answer(inp.output_text)
        if why_not is not None:
            return self.check(False, "", why_not)
        errors = validate(value, self.schema)
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        return self.check(not errors, "answer matches the schema",
                          "; ".join(errors[:3]) + more)


def _json(value: Any, limit: int = 40) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _subset(want: Any, got: Any, path: str) -> str | None:
    """None if ``want`` is contained in ``got`` (mappings: a subset of keys, recursively;
    lists and scalars: equal, with mappings inside lists compared as subsets); else why."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{path} should be an object, got {_json(got)}"
        for key, sub in want.items():
            if key not in got:
                return f"argument {path}.{key} is missing"
            why = _subset(sub, got[key], f"{path}.{key}")
            if why:
                return why
        return None
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return f"{path} should be {_json(want)}, got " \
                   f"{_json(got)}"
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            why = _subset(w, g, f"{path}[{i}]")
            if why:
                return why
        return None
    if not json_equal(want, got):
        return f"{path} is {_json(got)}, expected " \
               f"{_json(want)}"
    return None


def _compile(value: Any) -> Any:
    """``value`` with every string in it compiled to a Template (once, when configured)."""
    if isinstance(value, str):
        return Template(value)
    if isinstance(value, dict):
        return {k: _compile(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compile(v) for v in value]
    return value


def _render(value: Any, inp: ScoreInput) -> Any:
    if isinstance(value, Template):
        return fill(value, inp)
    if isinstance(value, dict):
        return {k: _render(v, inp) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, inp) for v in value]
    return value


@register_scorer("tool-call")
class ToolCall(BaseScorer):
    """The answer calls a tool: ``name`` (optional) and ``arguments`` (optional mapping that
    must be a subset of the call's parsed JSON arguments; strings in it may use variables).

    Looks at ``output.choices[0].message.tool_calls`` (and the legacy ``function_call``);
    passes when any call matches. Because ``name`` is the tool's name here, this scorer's
    own report name is set with ``label:`` (default ``tool-call``).
    """

    options = ("arguments", "label")

    def __init__(self, config: dict[str, Any]) -> None:
        # ``name`` here is the tool's name, not the scorer's: read it before the base does.
        config = dict(config)
        self.tool = config.pop("name", None)
        self.display = config.pop("label", None)
        super().__init__(config)
        if self.display is not None:
            if not isinstance(self.display, str) or not self.display:
                raise ScorerConfigError("a non-empty string naming this scorer in reports",
                                        key="label")
            self.name = self.display

    def configure(self, opts: Options) -> None:
        if self.tool is not None and not isinstance(self.tool, str):
            raise ScorerConfigError(f"must be a string, got {self.tool!r}; e.g. name: "
                                    "get_weather", key="name")
        self.tool_name = Template(self.tool) if self.tool else None
        arguments = opts.mapping("arguments", "{city: \"{{city}}\"}", required=False)
        self.arguments = _compile(arguments) if arguments is not None else None

    def evaluate(self, inp: ScoreInput) -> Score:
        if inp.output is None:
            return Score(0.0, None, "could not score: no response body to look for tool calls",
                         error="tool-call needs the chat.completion body (output is None)")
        message: dict[str, Any] = {}
        choices = inp.output.get("choices") or []
        if choices and isinstance(choices[0], dict):
            message = choices[0].get("message") or {}
        calls = [c.get("function") or {} for c in message.get("tool_calls") or []
                 if isinstance(c, dict)]
        if isinstance(message.get("function_call"), dict):
            calls.append(message["function_call"])
        want_name = fill(self.tool_name, inp) if self.tool_name else None
        want_args = _render(self.arguments, inp) if self.arguments is not None else None
        if not calls:
            return self.check(False, "", "answer calls no tool"
                              + (f" (expected '{want_name}')" if want_name else ""))
        names = [str(c.get("name")) for c in calls]
        reasons: list[str] = []
        for call in calls:
            if want_name is not None and call.get("name") != want_name:
                continue
            if want_args is None:
                return self.check(True, f"answer calls '{call.get('name')}'", "")
            raw = call.get("arguments")
            try:
                args = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
            except orjson.JSONDecodeError as exc:
                reasons.append(f"'{call.get('name')}' has arguments that are not valid JSON "
                               f"({exc}): {clip(str(raw), 40)}")
                continue
            why = _subset(want_args, args if args is not None else {}, "arguments")
            if why is None:
                return self.check(True, f"answer calls '{call.get('name')}' with matching "
                                        "arguments", "")
            reasons.append(f"'{call.get('name')}': {why}")
        if not reasons:
            return self.check(False, "", f"answer calls {', '.join(names)}, "
                                         f"not '{want_name}'")
        return self.check(False, "", "; ".join(reasons))
