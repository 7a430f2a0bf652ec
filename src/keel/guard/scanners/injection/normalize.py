"""The text as the injection rules read it: NFKD with accents dropped, lower case,
zero-width and tag characters removed, Cyrillic/Greek lookalikes mapped to Latin, with a
map from the normalised offsets back to the original's (for the finding's spans)."""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from functools import lru_cache

from keel.guard.scanners.unicode import LATIN_OF, ZW_CHARS

_DROP = frozenset(ZW_CHARS)
# a run of non-ASCII characters, with any ASCII non-letters (spaces, digits, punctuation)
# between them: text in another script folds in one translate() call
_NON_ASCII = re.compile(r"[^\x00-\x7f](?:[^A-Za-z]*[^\x00-\x7f])?")


@lru_cache(maxsize=4096)
def _fold(ch: str) -> str:
    """One character, folded: invisible ones dropped, lookalikes mapped to Latin, compatibility
    forms (fullwidth, ligatures) decomposed, Latin/Greek/Cyrillic accents (U+0300-036F)
    dropped, case folded. Marks of other scripts stay (they cannot be part of a match)."""
    if ch in _DROP or 0xE0000 <= ord(ch) <= 0xE007F:
        return ""
    ch = LATIN_OF.get(ch, ch)
    decomposed = unicodedata.normalize("NFKD", ch)
    return "".join(c for c in decomposed if not "\u0300" <= c <= "\u036f").casefold()


class _FoldTable(dict[int, str]):
    """A ``str.translate`` table filled on demand; it also remembers the characters that do
    not fold to exactly one character (``_IRREGULAR``)."""

    def __missing__(self, key: int) -> str:
        folded = _fold(chr(key))
        if len(folded) != 1:
            _IRREGULAR.add(chr(key))
        self[key] = folded
        return folded


_IRREGULAR: set[str] = set()
_FOLD_TABLE = _FoldTable()


class Normalized:
    """Lower-cased, accent-free text with a map from its offsets back to the original's."""

    __slots__ = ("_linear", "_norm", "_orig", "text")

    def __init__(self, text: str) -> None:
        if text.isascii():
            self.text = text.lower()
            self._norm: list[int] = [0]
            self._orig: list[int] = [0]
            self._linear: list[bool] = [True]
            return
        parts: list[str] = []
        norm: list[int] = []
        orig: list[int] = []
        linear: list[bool] = []
        pos = 0
        out = 0

        def add(piece: str, at: int, lin: bool) -> None:
            nonlocal out
            norm.append(out)
            orig.append(at)
            linear.append(lin)
            parts.append(piece)
            out += len(piece)

        for m in _NON_ASCII.finditer(text):
            if m.start() > pos:
                add(text[pos:m.start()].lower(), pos, True)
            # a run whose characters each fold to one (é -> e) is one linear segment; in any
            # other (ß -> ss, a zero-width space -> nothing) each character is a segment
            run = m.group(0)
            folded = run.translate(_FOLD_TABLE)
            if _IRREGULAR.isdisjoint(run):
                add(folded, m.start(), True)
            else:
                for i, ch in enumerate(run):
                    add(_FOLD_TABLE[ord(ch)], m.start() + i, False)
            pos = m.end()
        if pos < len(text):
            add(text[pos:].lower(), pos, True)
        self.text = "".join(parts)
        self._norm, self._orig, self._linear = norm, orig, linear

    def start(self, pos: int) -> int:
        """The original offset of normalised offset ``pos`` (a span start)."""
        i = max(0, bisect_right(self._norm, pos) - 1)
        return self._orig[i] + (pos - self._norm[i] if self._linear[i] else 0)

    def end(self, pos: int) -> int:
        """The original offset just after normalised offset ``pos - 1`` (a span end)."""
        if pos <= 0:
            return 0
        i = max(0, bisect_right(self._norm, pos - 1) - 1)
        return self._orig[i] + (pos - self._norm[i] if self._linear[i] else 1)
