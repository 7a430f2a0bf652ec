"""Encoded and hidden injections: base64 and hex blocks, ROT13 text (when ROT13 is named)
and tag characters that decode to text with a strong phrase signal, tag characters hiding
any text, and zero-width characters splitting it. At most 20 blocks (``_MAX_DECODE``) are
decoded per text."""

from __future__ import annotations

import base64
import binascii
import codecs
import re

from keel.guard.scanners.injection.normalize import Normalized
from keel.guard.scanners.injection.rules import Signal, phrase_signals
from keel.guard.scanners.unicode import TAG_RUN, ZW_RUN, hidden_tag_text

# the block starts after a character outside its alphabet (so the engine never retries from
# inside a word) and is checked for glue (=, _, -) on its left in Python
_B64_RUN = re.compile(r"[^A-Za-z0-9+/]([A-Za-z0-9+/]{20,}={0,2})(?![A-Za-z0-9+/=_-])")
_B64_GLUE = frozenset("=_-")  # a block glued to one of these is part of something else
# hex-encoded text: every byte of ASCII text starts with a hex digit 0-7
_HEX_RUN = re.compile(r"[0-7][0-9A-Fa-f](?:[ :,-]?[0-7][0-9A-Fa-f]){11,}(?![0-9A-Fa-f])")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_ROT13 = re.compile(r"\brot-?13\b")
_MAX_DECODE = 20  # encoded blocks decoded per text
_PRINTABLE = frozenset(range(32, 127)) | {9, 10, 13}


def _decoded_text(raw: bytes) -> str | None:
    if len(raw) < 12 or sum(b in _PRINTABLE for b in raw) < 0.9 * len(raw):
        return None
    return raw.decode("ascii", "replace")


def _hidden_hits(decoded: str) -> bool:
    signals = phrase_signals(Normalized(decoded).text,
                             frozenset(("override", "roleplay", "exfiltration", "delimiter")))
    return any(s.weight >= 0.55 for s in signals)


def encoded_signals(text: str, norm: Normalized) -> list[Signal]:
    """Signals from encoded payloads and hidden characters (offsets into ``text``)."""
    out: list[Signal] = []
    tried = 0
    padded = " " + text  # so that a block at the very start has a character before it
    for m in _B64_RUN.finditer(padded):
        if tried >= _MAX_DECODE:
            break
        block = m.group(1)
        start = m.start(1)
        if (len(block) > 8192 or padded[max(0, start - 7):start] == "base64,"
                or padded[start - 1] in _B64_GLUE):
            continue
        tried += 1
        try:
            raw = base64.b64decode(block + "=" * (-len(block) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded = _decoded_text(raw)
        if decoded and _hidden_hits(decoded):
            out.append(Signal("encoded", "base64_payload", 0.95, start - 1, m.end(1) - 1,
                              original=True))
    for m in _HEX_RUN.finditer(text):
        if tried >= _MAX_DECODE:
            break
        if m.start() and text[m.start() - 1] in _HEX_DIGITS:
            continue  # the tail of a longer hex run (a hash, say): not a payload start
        tried += 1
        raw = bytes.fromhex(re.sub(r"[^0-9A-Fa-f]", "", m.group(0)))
        decoded = _decoded_text(raw)
        if decoded and _hidden_hits(decoded):
            out.append(Signal("encoded", "hex_payload", 0.95, *m.span(), original=True))
    if "rot" in norm.text and _ROT13.search(norm.text) and _hidden_hits(
            codecs.decode(text, "rot13")):
        out.append(Signal("encoded", "rot13_payload", 0.95, 0, len(text), original=True))
    if not text.isascii():
        hidden = hidden_tag_text(text)
        if hidden.strip():
            first = TAG_RUN.search(text)
            assert first is not None
            weight = 0.95 if _hidden_hits(hidden) else 0.9
            out.append(Signal("encoded", "tag_characters", weight, *first.span(), original=True))
        runs = [m.span() for m in ZW_RUN.finditer(text)]
        if len(runs) >= 3 or any(e - s >= 2 for s, e in runs):
            out.append(Signal("encoded", "zero_width", 0.5, *runs[0], original=True))
    return out
