"""A prompt version's content: messages with ``{{variables}}``, model, params, tools.

The content hash covers everything that changes behaviour (messages, model, params,
tools, response format), in a canonical form, so pushing the same prompt twice is
recognised and does not create a new version. The messages' placeholders
(``keel.placeholders``) are compiled once, when the spec is made, and filled per request.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from keel.errors import InvalidRequest
from keel.placeholders import MissingVariable, Template

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
ROLES = ("system", "developer", "user", "assistant")
KEYS = ("name", "model", "params", "messages", "tools", "response_format", "description")


class PromptSpecError(ValueError):
    """A prompt file or body that cannot be a prompt version (says which key and why)."""


@dataclass(frozen=True, slots=True)
class PromptSpec:
    name: str
    messages: tuple[dict[str, Any], ...]
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    tools: tuple[dict[str, Any], ...] | None = None
    response_format: dict[str, Any] | None = None
    description: str | None = None
    # each message's content, compiled (not part of the spec's value)
    _templates: tuple[Template, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_templates",
                           tuple(Template(m["content"]) for m in self.messages))

    @classmethod
    def parse(cls, data: Any, where: str = "prompt") -> PromptSpec:
        if not isinstance(data, dict):
            raise PromptSpecError(f"{where}: must be a mapping with name: and messages:")
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise PromptSpecError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: "
                                  f"{', '.join(KEYS)}")
        name = data.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise PromptSpecError(f"{where}: name: use 1-128 letters, digits, '.', '_' or '-' "
                                  "(no '@', which separates name and label)")
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise PromptSpecError(f"{where}: messages: a non-empty list of {{role, content}}")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ROLES:
                raise PromptSpecError(f"{where}: messages[{i}].role: one of {', '.join(ROLES)}")
            if not isinstance(m.get("content"), str):
                raise PromptSpecError(f"{where}: messages[{i}].content: a string (variables as "
                                      "{{name}})")
        model = data.get("model")
        if model is not None and not isinstance(model, str):
            raise PromptSpecError(f"{where}: model: a model or route name")
        params = data.get("params") or {}
        if not isinstance(params, dict):
            raise PromptSpecError(f"{where}: params: a mapping, e.g. {{temperature: 0.2}}")
        for banned in ("messages", "model", "stream"):
            if banned in params:
                raise PromptSpecError(f"{where}: params.{banned}: not a parameter; set it "
                                      "elsewhere")
        tools = data.get("tools")
        if tools is not None and not isinstance(tools, list):
            raise PromptSpecError(f"{where}: tools: a list of OpenAI tool definitions")
        rf = data.get("response_format")
        if rf is not None and not isinstance(rf, dict):
            raise PromptSpecError(f"{where}: response_format: a mapping")
        return cls(name=name, messages=tuple(dict(m) for m in messages), model=model,
                   params=dict(params), tools=tuple(tools) if tools is not None else None,
                   response_format=rf, description=data.get("description"))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "messages": list(self.messages)}
        if self.model is not None:
            out["model"] = self.model
        if self.params:
            out["params"] = self.params
        if self.tools is not None:
            out["tools"] = list(self.tools)
        if self.response_format is not None:
            out["response_format"] = self.response_format
        if self.description:
            out["description"] = self.description
        return out

    def content_hash(self) -> str:
        content = {k: v for k, v in self.to_dict().items() if k not in ("name", "description")}
        raw = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(raw).hexdigest()

    @property
    def variables(self) -> list[str]:
        return list(dict.fromkeys(n for t in self._templates for n in t.names))

    def render(self, variables: dict[str, Any], ref: str) -> list[dict[str, Any]]:
        """The messages with variables filled in; missing ones are a 400 naming them."""
        try:
            # fresh dicts: the gateway may rewrite a message in place (redaction, canaries)
            return [{**m, "content": t.render(variables)}
                    for m, t in zip(self.messages, self._templates, strict=True)]
        except MissingVariable:
            missing = dict.fromkeys(n for t in self._templates for n in t.missing(variables))
            raise InvalidRequest(
                f"prompt '{ref}' needs variable(s) {', '.join(missing)}; pass them in "
                f"'variables' (it uses: {', '.join(self.variables)})",
                param="variables", code="missing_variable") from None
