"""``banned`` (keywords and topics) and ``max_tokens`` (prompt length)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from keel.guard.scanners.base import (
    Finding,
    ScanContext,
    ScannerConfigError,
    Span,
    register_scanner,
)
from keel.guard.scanners.support import BaseScanner, Options
from keel.text import estimate_text

_WS = re.compile(r"\s+")
Trie = dict[str, "Trie"]


def literal_alternation(words: Iterable[str]) -> str:
    """A regex matching any of ``words`` literally (whitespace inside a word matches any run of
    whitespace), built as a prefix tree so that long lists stay fast."""
    tree: Trie = {}
    for word in words:
        node = tree
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: Trie) -> str:
        ends = "" in node
        branches = []
        for ch in sorted(k for k in node if k):
            piece = r"\s+" if ch == " " else re.escape(ch)
            branches.append(piece + emit(node[ch]))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 and not ends else "(?:" + "|".join(
            branches) + ")"
        return body + "?" if ends else body

    return emit(tree)


@register_scanner("banned")
class BannedScanner(BaseScanner):
    """Options: ``keywords`` (a list), ``topics`` (a mapping of topic name to keywords; at least
    one of the two), ``whole_word`` (default true), ``case_sensitive`` (default false).

    Keywords are literal text (not regexes); whitespace inside one matches any whitespace.
    Explanations name the topic but never the keyword (a banned word can itself be
    confidential, such as a project code name)."""

    options = ("keywords", "topics", "whole_word", "case_sensitive")

    def configure(self, opts: Options) -> None:
        keywords = opts.strings("keywords", "[project-falcon, acquisition]", required=False)
        topics = opts.mapping("topics", "{weapons: [rifle, ammunition], medical: [diagnosis]}",
                              required=False) or {}
        if not keywords and not topics:
            raise ScannerConfigError("set keywords: or topics: (or both); e.g. keywords: "
                                     "[project-falcon] or topics: {weapons: [rifle, ammo]}",
                                     key="keywords")
        self.case_sensitive = opts.flag("case_sensitive", False)
        whole = opts.flag("whole_word", True)
        labels: dict[str, set[str]] = {}
        for kw in keywords:
            labels.setdefault(self._key(kw), set()).add("keyword")
        for topic, words in topics.items():
            if (not isinstance(topic, str) or not isinstance(words, list) or not words
                    or not all(isinstance(w, str) and w.strip() for w in words)):
                raise ScannerConfigError(f"topic {topic!r} must map to a non-empty list of "
                                         "keywords; e.g. topics: {weapons: [rifle, ammunition]}",
                                         key="topics")
            for w in words:
                labels.setdefault(self._key(w), set()).add(f"topic:{topic}")
        self.labels = labels
        body = literal_alternation(sorted(labels))
        if whole:
            body = rf"(?<!\w){body}(?!\w)"
        self.pattern = re.compile(body, 0 if self.case_sensitive else re.IGNORECASE)

    def _key(self, word: str) -> str:
        word = _WS.sub(" ", word.strip())
        return word if self.case_sensitive else word.lower()

    def check(self, text: str, ctx: ScanContext) -> Finding:
        matches: list[Span] = []
        for m in self.pattern.finditer(text):
            for label in sorted(self.labels.get(self._key(m.group(0)), ())):
                matches.append(Span(label, *m.span()))
        if not matches:
            return self.clean("no banned keywords or topics")
        topics: dict[str, int] = {}
        for s in matches:
            topics[s.kind] = topics.get(s.kind, 0) + 1
        parts = [f"topic '{k[6:]}' ({n})" if k.startswith("topic:") else f"banned keyword ({n})"
                 for k, n in topics.items()]
        return self.finding(1.0, matches, "matched " + ", ".join(parts))


@register_scanner("max_tokens")
class MaxTokensScanner(BaseScanner):
    """Options: ``max`` (required): the most tokens allowed, estimated at about four
    characters per token (``keel.text``; no tokenizer is downloaded)."""

    options = ("max",)
    stages = ("input",)

    def configure(self, opts: Options) -> None:
        self.max = opts.whole("max", "4000", minimum=1)

    def check(self, text: str, ctx: ScanContext) -> Finding:
        tokens = estimate_text(text)
        if tokens <= self.max:
            return self.clean(f"about {tokens} tokens, within the limit of {self.max}")
        cut = min(len(text), self.max * 4)
        return self.finding(1.0, [Span("over_limit", cut, len(text))],
                            f"about {tokens} tokens (estimated), over the limit of {self.max}")
