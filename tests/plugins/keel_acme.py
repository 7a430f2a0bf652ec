"""keel-acme: a keel plugin with a provider kind, a scanner type and a scorer type.

tests/plugins packs this file into a wheel as the top-level module ``keel_acme``, with these
entry points (its ``pyproject.toml`` would say the same under ``[project.entry-points]``)::

    [keel.providers]
    acme-echo = keel_acme:EchoProvider

    [keel.scanners]
    shout = keel_acme:ShoutScanner

    [keel.scorers]
    greeted = keel_acme:GreetedScorer
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

from keel.evals.scorers import Score, ScoreInput
from keel.gateway.providers.base import Provider, ProviderConfigError
from keel.guard.scanners import EMPTY_CONTEXT, Finding, ScanContext, ScannerConfigError, Span
from keel.types import JSON, ChatResult, Usage


class EchoProvider(Provider):
    """Answers "<greeting>! You said: <the last user message>". A real plugin would call its
    upstream here (``self.config.base_url``, ``self.config.api_key``, ...)."""

    option_names = ("greeting",)  # the keys its options: may have
    supports_embeddings = False

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        super().check_options(options)  # unknown keys
        if not isinstance(options.get("greeting", "Hello"), str):
            raise ProviderConfigError("must be a string, e.g. greeting: Ahoy", key="greeting")

    def _answer(self, body: JSON) -> str:
        said = next((m.get("content") for m in reversed(body["messages"])
                     if m.get("role") == "user"), "")
        greeting = self.config.options.get("greeting", "Hello")
        return f"{greeting}! You said: {said if isinstance(said, str) else '...'}"

    def _usage(self, body: JSON, text: str) -> JSON:
        prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion = len(text.split())
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion}

    async def chat(self, body: JSON) -> ChatResult:
        text = self._answer(body)
        usage = self._usage(body, text)
        completion = {
            "id": "chatcmpl-acme", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"], "usage": usage,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
        }
        return ChatResult(body=completion, usage=Usage.from_openai(usage),
                          served_model=body["model"])

    async def chat_stream(self, body: JSON) -> AsyncIterator[JSON]:
        text = self._answer(body)
        head = {"id": "chatcmpl-acme", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": body["model"]}
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == len(words) - 1 else word + " "
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            yield {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        yield {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield {**head, "choices": [], "usage": self._usage(body, text)}


class ShoutScanner:
    """Triggers on words in capitals of at least ``min_letters`` letters (default 4)."""

    stage = "input"  # input, output or both
    cost = "cheap"  # cheap scanners run first

    def __init__(self, config: dict[str, Any]) -> None:
        unknown = sorted(set(config) - {"type", "name", "min_letters"})
        if unknown:
            raise ScannerConfigError("unknown option; allowed: name, min_letters",
                                     key=unknown[0])
        self.type_name = config["type"]
        self.name = config.get("name", self.type_name)
        letters = config.get("min_letters", 4)
        if isinstance(letters, bool) or not isinstance(letters, int) or letters < 2:
            raise ScannerConfigError("must be a whole number of at least 2, e.g. min_letters: 4",
                                     key="min_letters")
        self.pattern = re.compile(rf"\b[A-Z]{{{letters},}}\b")

    def scan(self, text: str, ctx: ScanContext = EMPTY_CONTEXT) -> Finding:
        spans = [Span("shouting", m.start(), m.end()) for m in self.pattern.finditer(text)]
        if not spans:
            return Finding(self.name, 0.0, False, [], "no shouting")
        return Finding(self.name, 1.0, True, spans, f"{len(spans)} words in capitals")


class GreetedScorer:
    """Passes when the answer begins with ``greeting``."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.name = config.get("name", "greeted")
        self.greeting = config.get("greeting", "Hello")

    async def score(self, inp: ScoreInput) -> Score:
        ok = inp.output_text.startswith(self.greeting)
        return Score(1.0 if ok else 0.0, ok,
                     "greeted" if ok else f"does not begin with {self.greeting!r}")
