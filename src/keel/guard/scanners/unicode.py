"""``unicode``: invisible and confusable characters used to hide or disguise text.

Kinds and scores (default threshold 0.5):

* ``tag`` (1.0): Unicode tag characters U+E0000-E007F, which render as nothing and can
  spell out a hidden ASCII message. Emoji tag sequences (the subdivision flags: U+1F3F4,
  tags, U+E007F) are left alone.
* ``bidi`` (0.8): bidirectional embeddings, overrides and isolates (U+202A-202E,
  U+2066-2069), which make text display in a different order from the one a model reads.
  The plain marks LRM/RLM/ALM are ordinary in right-to-left text and left alone.
* ``zero_width`` (0.9 for a run of two or more or three or more in all; 0.3 for a single
  one, below the default threshold: one stray ZWSP is common in pasted web text): zero-width
  space, word joiner, invisible operators, BOM after the start, Mongolian vowel separator,
  Hangul fillers and other blank letters, combining grapheme joiner. ZWJ/ZWNJ next to emoji
  or to letters of scripts that use them (Arabic, Indic, ...) are left alone.
* ``variation_selector`` (0.9): a run of two or more variation selectors (an emoji takes one;
  long runs of them can smuggle data), or any of the supplement U+E0100-E01EF.
* ``mixed_script`` (0.8): a word of three or more letters mixing Latin letters with Cyrillic
  or Greek letters that look like Latin ones (``paypal`` spelled with a Cyrillic ``a``,
  U+0430). ``μs`` or ``ΔT`` do not count (no lookalike).

Plain ASCII text returns at once.
"""

from __future__ import annotations

import re

from keel.guard.scanners.base import (
    Finding,
    ScanContext,
    ScannerConfigError,
    Span,
    register_scanner,
)
from keel.guard.scanners.support import BaseScanner, Options, count_kinds

KINDS = ("tag", "bidi", "zero_width", "variation_selector", "mixed_script")

TAG_RUN = re.compile("[\U000E0000-\U000E007F]+")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]+")
ZW_CHARS = ("\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u180e\u034f"
             "\u115f\u1160\u3164\uffa0")
ZW_RUN = re.compile(f"[{ZW_CHARS}]+")
_VS_RUN = re.compile("[\ufe00-\ufe0f\U000E0100-\U000E01EF]+")
_CYR_GREEK = re.compile("[\u0370-\u03ff\u0400-\u052f]")
_SPECIAL = re.compile(f"[{ZW_CHARS}\u202a-\u202e\u2066-\u2069\ufe00-\ufe0f"
                      "\U000E0000-\U000E007F\U000E0100-\U000E01EF]")
_MIXED_WORD = re.compile(r"\w*[\u0370-\u03ff\u0400-\u052f]\w*")
_LATIN = re.compile("[A-Za-z\u00c0-\u024f]")
# Cyrillic and Greek letters that look like Latin ones, and the Latin letter each imitates
LATIN_OF = dict(zip("аеорсухіјѕԁԛԝһӏАВЕКМНОРСТХІЈЅԚԜҮοαινκρτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
                    "aeopcyxijsdqwhlABEKMHOPCTXIJSQWYoaivkptuxABEZHIKMNOPTYX", strict=True))
LOOKALIKES = frozenset(LATIN_OF)
_JOINERS = "\u200c\u200d"
_FLAG = "\U0001f3f4"


def _is_emoji(ch: str) -> bool:
    o = ord(ch)
    return (0x1F000 <= o <= 0x1FAFF or 0x2600 <= o <= 0x27BF or o == 0xFE0F
            or 0x1F3FB <= o <= 0x1F3FF)


def _joiner_ok(text: str, start: int, end: int) -> bool:
    """A lone ZWJ/ZWNJ between emoji or next to a non-Latin letter is ordinary text."""
    if end - start != 1 or text[start] not in _JOINERS:
        return False
    prev = text[start - 1] if start else ""
    nxt = text[end] if end < len(text) else ""
    for ch in (prev, nxt):
        if ch and (_is_emoji(ch) or (ch.isalpha() and not ch.isascii()
                                     and not _LATIN.match(ch))):
            return True
    return False


def hidden_tag_text(text: str) -> str:
    """The ASCII text spelled by tag characters in ``text`` ("" if none)."""
    out = []
    for m in TAG_RUN.finditer(text):
        out.append("".join(chr(ord(c) - 0xE0000) for c in m.group(0)
                           if 0xE0020 <= ord(c) <= 0xE007E))
    return " ".join(o for o in out if o)


def tag_spans(text: str) -> list[Span]:
    spans = []
    for m in TAG_RUN.finditer(text):
        s, e = m.span()
        run = m.group(0)
        if s and text[s - 1] == _FLAG and run.endswith("\U000e007f") and len(run) <= 8:
            continue  # a subdivision flag emoji
        spans.append(Span("tag", s, e))
    return spans


def zero_width_spans(text: str) -> list[Span]:
    return [Span("zero_width", *m.span()) for m in ZW_RUN.finditer(text)
            if not (m.start() == 0 and m.group(0) == "\ufeff")
            and not _joiner_ok(text, *m.span())]


@register_scanner("unicode")
class UnicodeScanner(BaseScanner):
    """Options: ``kinds`` (default all), ``threshold`` (default 0.5)."""

    options = ("kinds",)
    uses_threshold = True
    default_threshold = 0.5

    def configure(self, opts: Options) -> None:
        kinds = opts.strings("kinds", "[tag, bidi, zero_width]", required=False)
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            raise ScannerConfigError(f"unknown kind '{bad[0]}'; known: {', '.join(KINDS)}",
                                     key="kinds")
        self.kinds = frozenset(kinds or KINDS)

    def check(self, text: str, ctx: ScanContext) -> Finding:
        if text.isascii() or (_SPECIAL.search(text) is None
                              and _CYR_GREEK.search(text) is None):
            return self.clean("no invisible or confusable characters")
        found: list[tuple[Span, float]] = []
        k = self.kinds
        if "tag" in k:
            found += [(s, 1.0) for s in tag_spans(text)]
        if "bidi" in k:
            found += [(Span("bidi", *m.span()), 0.8) for m in _BIDI.finditer(text)]
        if "zero_width" in k:
            zw = zero_width_spans(text)
            many = len(zw) >= 3 or any(s.end - s.start >= 2 for s in zw)
            found += [(s, 0.9 if many else 0.3) for s in zw]
        if "variation_selector" in k:
            for m in _VS_RUN.finditer(text):
                run = m.group(0)
                if len(run) >= 2 or ord(run[0]) >= 0xE0100:
                    found.append((Span("variation_selector", *m.span()), 0.9))
        if "mixed_script" in k and _CYR_GREEK.search(text):
            for m in _MIXED_WORD.finditer(text):
                word = m.group(0)
                if (len(word) >= 3 and _LATIN.search(word)
                        and any(ch in LOOKALIKES for ch in word)):
                    found.append((Span("mixed_script", *m.span()), 0.8))
        if not found:
            return self.clean("no invisible or confusable characters")
        found.sort(key=lambda f: f[0].start)
        matches = [s for s, _ in found]
        return self.finding(max(sc for _, sc in found), matches,
                            f"hidden or disguised characters: {count_kinds(matches)}")
