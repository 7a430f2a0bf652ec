"""Output scanners: ``urls`` (hosts outside an allow-list), ``json_schema`` (valid JSON that
matches a schema), ``canary`` (system-prompt leakage) and ``tools`` (tool calls outside a
per-feature allow-list)."""

from __future__ import annotations

import re
import secrets
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import orjson

from keel.guard.scanners.base import (
    Finding,
    ScanContext,
    ScannerConfigError,
    Span,
    register_scanner,
)
from keel.guard.scanners.support import BaseScanner, Options
from keel.json_schema import schema_option, validate

# --- urls -------------------------------------------------------------------------------------

_URL = re.compile(r"(?i)\b(?:(?:https?|ftp|wss?)://|www\.)[^\s<>\"'`\])}]+")
_TRAILING = ".,;:!?*_~"


def normalize_host(host: str) -> str | None:
    host = host.strip().rstrip(".").lower()
    if not host:
        return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return host


@register_scanner("urls")
class UrlsScanner(BaseScanner):
    """Options: ``allow`` (required: host names; ``example.com`` also allows its subdomains
    unless ``subdomains: false``; ``*.example.com`` allows only its subdomains)."""

    options = ("allow", "subdomains")
    stages = ("output",)

    def configure(self, opts: Options) -> None:
        hosts = opts.strings("allow", "[example.com, docs.example.com]")
        subdomains = opts.flag("subdomains", True)
        self.exact: set[str] = set()
        self.suffixes: list[str] = []
        for raw in hosts:
            only_subs = raw.startswith("*.")
            host = normalize_host(raw[2:] if only_subs else raw)
            if host is None or "/" in host or ":" in host:
                raise ScannerConfigError(f"{raw!r} is not a host name; e.g. allow: "
                                         "[example.com, '*.cdn.example.com']", key="allow")
            if not only_subs:
                self.exact.add(host)
            if only_subs or subdomains:
                self.suffixes.append("." + host)

    def allowed(self, host: str | None) -> bool:
        if host is None:
            return False
        return host in self.exact or any(host.endswith(s) for s in self.suffixes)

    def check(self, text: str, ctx: ScanContext) -> Finding:
        if "://" not in text and "www." not in text.lower():
            return self.clean("no URLs")
        matches = []
        total = 0
        for m in _URL.finditer(text):
            url = m.group(0).rstrip(_TRAILING)
            total += 1
            full = url if "://" in url else "http://" + url
            try:
                host = urlsplit(full).hostname
            except ValueError:
                host = None
            if not self.allowed(normalize_host(host) if host else None):
                matches.append(Span("url", m.start(), m.start() + len(url)))
        if not matches:
            return self.clean(f"{total} URL(s), all to allowed hosts" if total else "no URLs")
        return self.finding(1.0, matches, f"{len(matches)} of {total} URL(s) point to hosts "
                                          "outside the allow-list")


# --- json_schema ------------------------------------------------------------------------------

_FENCE = re.compile(r"\A\s*```(?:json|JSON)?\s*\n(.*?)\n\s*```\s*\Z", re.S)


@register_scanner("json_schema")
class JsonSchemaScanner(BaseScanner):
    """Options: ``schema`` (required; the subset of JSON Schema that the eval ``json-schema``
    scorer supports), ``allow_code_fence`` (default true: one ```json fenced block around the
    whole answer is accepted)."""

    options = ("schema", "allow_code_fence")
    stages = ("output",)

    def configure(self, opts: Options) -> None:
        schema = opts.mapping("schema", "{type: object, required: [answer]}")
        assert schema is not None
        self.schema: dict[str, Any] = schema_option(
            schema, ScannerConfigError,
            "; e.g. schema: {type: object, properties: {answer: {type: string}}}")
        self.fences = opts.flag("allow_code_fence", True)

    def check(self, text: str, ctx: ScanContext) -> Finding:
        body = text
        if self.fences and "```" in text:
            m = _FENCE.match(text)
            if m:
                body = m.group(1)
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self.finding(1.0, [Span("invalid_json", 0, len(text))],
                                "the answer is not valid JSON")
        errors = validate(value, self.schema)
        if not errors:
            return self.clean("valid JSON matching the schema")
        # "path: message" -> path only: messages can quote values from the answer
        paths = list(dict.fromkeys(e.split(": ", 1)[0] for e in errors))
        shown = ", ".join(paths[:5]) + (", ..." if len(paths) > 5 else "")
        return self.finding(1.0, [Span("schema_violation", 0, len(text))],
                            f"JSON does not match the schema at {shown} "
                            f"({len(errors)} violation(s))")


# --- canary -----------------------------------------------------------------------------------


def make_canary(prefix: str = "kc") -> str:
    """A fresh random token to plant in a system prompt (``kc-5f0c2a9e7b14d6e3``); if it ever
    appears in an answer, the system prompt leaked. Pass it to the scan in
    ``ScanContext.canaries``, or list fixed ones in the scanner's ``canaries:`` option."""
    return f"{prefix}-{secrets.token_hex(8)}"


_WORD = re.compile(r"\w+")


@lru_cache(maxsize=128)
def _prompt_ngrams(prompt: str, n: int) -> tuple[frozenset[tuple[str, ...]], frozenset[str]]:
    words = [w.lower() for w in _WORD.findall(prompt)]
    grams = frozenset(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return grams, frozenset(words)


@register_scanner("canary")
class CanaryScanner(BaseScanner):
    """Options: ``canaries`` (fixed tokens, besides ``ScanContext.canaries``), ``verbatim``
    (default true: also look for runs of the context's system prompt), ``min_words``
    (default 8: the shortest verbatim run that counts)."""

    options = ("canaries", "verbatim", "min_words")
    stages = ("output",)

    def configure(self, opts: Options) -> None:
        self.canaries = tuple(opts.strings("canaries", "[kc-5f0c2a9e7b14d6e3]", required=False))
        self.verbatim = opts.flag("verbatim", True)
        self.min_words = opts.whole("min_words", "8", 8, minimum=3)

    def check(self, text: str, ctx: ScanContext) -> Finding:
        matches: list[Span] = []
        low = text.lower()
        for token in dict.fromkeys((*self.canaries, *ctx.canaries)):
            t = token.lower()
            pos = low.find(t)
            while pos >= 0:
                matches.append(Span("canary", pos, pos + len(t)))
                pos = low.find(t, pos + len(t))
        longest = 0
        if self.verbatim and ctx.system_prompt:
            for span in self._verbatim(text, ctx.system_prompt):
                matches.append(span)
                longest = max(longest, span.end - span.start)
        if not matches:
            return self.clean("no sign of the system prompt")
        parts = []
        n_canary = sum(1 for m in matches if m.kind == "canary")
        if n_canary:
            parts.append(f"a planted canary token appeared {n_canary} time(s)")
        runs = [m for m in matches if m.kind == "system_prompt"]
        if runs:
            parts.append(f"{len(runs)} run(s) of at least {self.min_words} words copied from "
                         "the system prompt")
        matches.sort(key=lambda m: m.start)
        return self.finding(1.0, matches, "; ".join(parts))

    def _verbatim(self, text: str, prompt: str) -> list[Span]:
        n = self.min_words
        grams, vocab = _prompt_ngrams(prompt, n)
        if not grams:
            return []
        words = [(m.group(0).lower(), m.start(), m.end()) for m in _WORD.finditer(text)]
        covered = [False] * len(words)
        for i in range(len(words) - n + 1):
            if words[i][0] not in vocab:
                continue
            if tuple(w for w, _, _ in words[i:i + n]) in grams:
                for j in range(i, i + n):
                    covered[j] = True
        spans = []
        i = 0
        while i < len(words):
            if not covered[i]:
                i += 1
                continue
            j = i
            while j + 1 < len(words) and covered[j + 1]:
                j += 1
            spans.append(Span("system_prompt", words[i][1], words[j][2]))
            i = j + 1
        return spans


# --- tools ------------------------------------------------------------------------------------

_SAFE_NAME = re.compile(r"[^\w.:-]")


@register_scanner("tools")
class ToolsScanner(BaseScanner):
    """Options: ``allow`` (tool names for every feature), ``features`` (feature -> tool names;
    replaces ``allow`` for that feature). At least one is required. Names may use ``*`` and
    ``?`` wildcards. A feature with no list (and no ``allow``) may call no tool.

    Reads ``ScanContext.tool_calls``, not the text; a match's offsets are the index of the
    offending call in ``tool_calls`` (``start``) and that index + 1 (``end``)."""

    options = ("allow", "features")
    stages = ("output",)

    def configure(self, opts: Options) -> None:
        self.allow = tuple(opts.strings("allow", "[search_docs, get_order]", required=False))
        features = opts.mapping("features", "{support: [search_docs, get_order]}",
                                required=False) or {}
        self.features: dict[str, tuple[str, ...]] = {}
        for feature, names in features.items():
            if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                raise ScannerConfigError(f"feature {feature!r} must map to a list of tool "
                                         "names ([] for none); e.g. features: {support: "
                                         "[search_docs]}", key="features")
            self.features[str(feature)] = tuple(names)
        if not self.allow and not self.features:
            raise ScannerConfigError("set allow: (tools for every feature) or features: "
                                     "(per feature); e.g. allow: [search_docs]", key="allow")

    def permitted(self, feature: str | None) -> tuple[str, ...]:
        if feature is not None and feature in self.features:
            return self.features[feature]
        return self.allow

    def check(self, text: str, ctx: ScanContext) -> Finding:
        if not ctx.tool_calls:
            return self.clean("no tool calls")
        allowed = self.permitted(ctx.feature)
        bad: list[Span] = []
        names: list[str] = []
        for i, call in enumerate(ctx.tool_calls):
            if not any(fnmatchcase(call.name, p) for p in allowed):
                bad.append(Span("tool_call", i, i + 1))
                names.append(_SAFE_NAME.sub("?", call.name[:64]))
        if not bad:
            return self.clean(f"{len(ctx.tool_calls)} tool call(s), all allowed")
        scope = f"feature '{ctx.feature}'" if ctx.feature else "this request"
        return self.finding(1.0, bad, f"{len(bad)} tool call(s) not allowed for {scope}: "
                                      + ", ".join(dict.fromkeys(names)))
