"""PII detection by regular expressions plus checksums: the one source of truth for the
patterns used by stored-content redaction (``keel.guard.redact``), the ``pii`` scanner and
request-scoped reversible redaction.

Covered kinds and formats:

* ``email``: ``local@domain.tld``.
* ``phone``: international ``+CC ...`` numbers (groups separated by space, dot or dash,
  with an optional area code in parentheses: ``+44 (0)20 ...``), ``(415) 555-0100``,
  ``415-555-0100``, ``415.555.0100`` and ``1-800-555-0100``. Plain space-separated digit
  groups without ``+`` are left alone (more often ids or amounts).
* ``card``: 13-19 digits (optionally in groups separated by space or dash) that start like a
  payment card (2-6) and pass the Luhn check.
* ``iban``: country code, two check digits and 11-30 alphanumerics (optionally in groups of
  four), passing the ISO 13616 mod-97 check; a trailing group that breaks the check is
  dropped before giving up.
* ``ssn``: US social security numbers written ``123-45-6789`` (never-issued areas 000, 666
  and 9xx excluded).
* ``ip``: IPv4 dotted quads and IPv6 addresses (full or ``::``-compressed, validated by
  :mod:`ipaddress`; the loopback and unspecified addresses ``::1``/``::`` are not PII).
* ``address``: US-style street addresses: a house number (``221B`` too), an optional
  direction, one to four capitalised name words (or an ordinal like ``5th``), a street suffix
  (Street, St, Avenue, Rd, ...), an optional direction after it (``NW``), then optionally a
  unit (``Apt 4B``, ``#12``) and ``, City, ST 12345``.

Names are not covered here (no regex can find them well); the ``pii`` scanner can add them
through Presidio when it is installed.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

KINDS = ("email", "iban", "card", "ssn", "ip", "phone", "address")
PLACEHOLDER = {"email": "EMAIL", "iban": "IBAN", "card": "CARD", "ssn": "SSN", "ip": "IP",
               "phone": "PHONE", "address": "ADDRESS", "name": "NAME"}


class PiiSpan(NamedTuple):
    kind: str
    start: int
    end: int


# --- checksums --------------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    s = text.replace(" ", "")
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    moved = s[4:] + s[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in moved))
    except ValueError:
        return False
    return number % 97 == 1


# --- patterns ---------------------------------------------------------------------------------

_EMAIL_DOMAIN = re.compile(r"@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
_LOCAL_CHARS = frozenset(string.ascii_letters + string.digits + "._%+-")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
_SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,4}"
                    r"|\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}|(?:1[.-])?\d{3}[.-]\d{3}[.-]\d{4})(?!\w)")
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}"
                   r"(?:25[0-5]|2[0-4]\d|1?\d?\d)(?!\.?\d)(?!\w)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}"
                   r"(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")
_SUFFIX = (r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|"
           r"Terrace|Way|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Square|Sq|Trail|Trl|Alley|Loop|"
           r"Plaza|Crescent|Row)")
_ADDRESS = re.compile(
    r"\b\d{1,6}[A-Z]?(?:-\d{1,4})?[ ]+"
    r"(?:(?:N|S|E|W|NE|NW|SE|SW)\.?[ ]+|(?:North|South|East|West)[ ]+)?"
    r"(?:(?:[A-Z][a-z]+|[A-Z]\.|\d{1,3}(?:st|nd|rd|th))[ ]+){1,4}"
    + _SUFFIX + r"\b\.?(?:[ ](?:NW|NE|SW|SE|N|S|E|W)\b\.?)?"
    r"(?:,?[ ]+(?:Apt|Apartment|Suite|Ste|Unit|Floor|Fl|#)\.?[ ]*#?[A-Za-z0-9-]{1,6}\b)?"
    r"(?:,[ ]*[A-Z][a-z]+(?:[ ][A-Z][a-z]+){0,2},?[ ]+[A-Z]{2}[ ]+\d{5}(?:-\d{4})?\b)?")
_CARD_START = frozenset("23456")
_DIGITS = re.compile(r"\d+")


Finder = Callable[[str, int, int], Iterator[tuple[int, int]]]


def _cards(text: str, pos: int, end: int) -> Iterator[tuple[int, int]]:
    for m in _CARD.finditer(text, pos, end):
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and digits[0] in _CARD_START and luhn_ok(digits):
            yield m.span()


def _ibans(text: str, pos: int, end: int) -> Iterator[tuple[int, int]]:
    for m in _IBAN.finditer(text, pos, end):
        candidate = m.group(0)
        while True:
            if iban_ok(candidate):
                yield m.start(), m.start() + len(candidate)
                break
            cut = max(candidate.rfind(" "), len(candidate) - 4)
            if cut <= 15:  # nothing shorter can be an IBAN
                break
            candidate = candidate[:cut].rstrip()


def _ips(text: str, pos: int, end: int) -> Iterator[tuple[int, int]]:
    for m in _IPV4.finditer(text, pos, end):
        yield m.span()
    if text.count(":", pos, end) < 2:
        return
    for m in _IPV6.finditer(text, pos, end):
        s = m.group(0)
        if s.count(":") < 2 or s in ("::", "::1"):
            continue
        try:
            ipaddress.IPv6Address(s)
        except ValueError:
            continue
        yield m.span()


def _simple(pattern: re.Pattern[str]) -> Finder:
    def find(text: str, pos: int, end: int) -> Iterator[tuple[int, int]]:
        for m in pattern.finditer(text, pos, end):
            yield m.span()
    return find


def _emails(text: str) -> Iterator[tuple[int, int]]:
    """From each ``@``: the domain by regex, the local part by walking back."""
    at = text.find("@")
    while at >= 0:
        m = _EMAIL_DOMAIN.match(text, at)
        start = at
        while start > 0 and start > at - 64 and text[start - 1] in _LOCAL_CHARS:
            start -= 1
        if m and start < at and (start == 0 or not (text[start - 1].isalnum()
                                                    or text[start - 1] == "_")):
            # the local part must start at a word boundary, as with \b
            yield start, m.end()
            at = text.find("@", m.end())
        else:
            at = text.find("@", at + 1)


def _windows(text: str) -> list[tuple[int, int]]:
    """The parts of ``text`` that can hold a digit-bearing kind: around each run of digits
    (from a few characters before it, for ``+``, ``(`` or an IBAN's country code, to 100
    characters after it, for an address's street name, extended to the end of a word),
    merged where they overlap. Prose with few digits is then scanned only where it has them."""
    out: list[tuple[int, int]] = []
    n = len(text)
    for m in _DIGITS.finditer(text):
        start = max(0, m.start() - 6)
        end = min(n, m.end() + 100)
        while end < n and (text[end].isalnum() or text[end] == "_"):
            end += 1
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


# The digit-bearing kinds, in precedence order (email, which needs no digit, comes first):
# where two kinds overlap, the earlier one wins.
_FINDERS: tuple[tuple[str, Finder], ...] = (
    ("iban", _ibans),
    ("card", _cards),
    ("ssn", _simple(_SSN)),
    ("ip", _ips),
    ("phone", _simple(_PHONE)),
    ("address", _simple(_ADDRESS)),
)


def find_pii(text: str, kinds: Iterable[str] | None = None) -> list[PiiSpan]:
    """Every PII span in ``text`` of the given kinds (default: all), sorted, non-overlapping.

    When spans of two kinds overlap, the kind earlier in :data:`KINDS` wins (an email address
    is not also read as a phone number)."""
    wanted = None if kinds is None else set(kinds)
    taken: list[PiiSpan] = []
    if wanted is None or "email" in wanted:
        taken.extend(PiiSpan("email", s, e) for s, e in _emails(text))
    windows = _windows(text)
    for kind, finder in _FINDERS:
        if wanted is not None and kind not in wanted:
            continue
        for pos, end in windows:
            for start, stop in finder(text, pos, end):
                if not any(start < t.end and t.start < stop for t in taken):
                    taken.append(PiiSpan(kind, start, stop))
    taken.sort(key=lambda s: s.start)
    return taken


def replace_spans(text: str, spans: Iterable[PiiSpan],
                  replacement: Callable[[PiiSpan], str]) -> str:
    """``text`` with each (sorted, non-overlapping) span replaced by ``replacement(span)``."""
    out: list[str] = []
    pos = 0
    for span in spans:
        out.append(text[pos:span.start])
        out.append(replacement(span))
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


# --- reversible redaction ---------------------------------------------------------------------

_TOKEN = re.compile(r"\[([A-Z]+)_(\d+)\]")


class RedactionMap(Mapping[str, str]):
    """Placeholder -> original value for one request. It lives in memory only: it cannot be
    pickled, copied out by ``repr`` or serialised by ``json``/``orjson`` (not a dict)."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self._values: dict[str, str] = dict(values or {})

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<RedactionMap of {len(self._values)} placeholder(s)>"

    def __reduce__(self) -> Any:
        raise TypeError("a RedactionMap holds the request's PII and never leaves memory")

    def __copy__(self) -> RedactionMap:
        return RedactionMap(self._values)


class Redactor:
    """Reversible redaction across the texts of one request: each value becomes a numbered
    placeholder (``[EMAIL_1]``), the same value the same placeholder in every text, and
    :attr:`mapping` puts them back with :func:`restore`. Numbers already used by
    placeholder-like text in ``avoid`` (the request's texts) are skipped, so restoring never
    rewrites what the user wrote."""

    __slots__ = ("_by_value", "_counters", "_used", "_values")

    def __init__(self, avoid: Iterable[str] = ()) -> None:
        self._used = {m.group(0) for t in avoid if "[" in t for m in _TOKEN.finditer(t)}
        self._values: dict[str, str] = {}
        self._by_value: dict[tuple[str, str], str] = {}
        self._counters: dict[str, int] = {}

    def redact(self, text: str, spans: Iterable[PiiSpan]) -> str:
        """``text`` with each (sorted, non-overlapping) span replaced by its placeholder."""

        def placeholder(span: PiiSpan) -> str:
            value = text[span.start:span.end]
            label = PLACEHOLDER.get(span.kind, span.kind.upper())
            token = self._by_value.get((label, value))
            if token is None:
                while True:
                    self._counters[label] = self._counters.get(label, 0) + 1
                    token = f"[{label}_{self._counters[label]}]"
                    if token not in self._used:
                        break
                self._by_value[(label, value)] = token
                self._values[token] = value
            return token

        return replace_spans(text, spans, placeholder)

    @property
    def mapping(self) -> RedactionMap:
        return RedactionMap(self._values)


def redact_reversible(text: str, kinds: Iterable[str] | None = None,
                      spans: Iterable[PiiSpan] | None = None) -> tuple[str, RedactionMap]:
    """``text`` with each PII value replaced by a numbered placeholder (``[EMAIL_1]``), and the
    map to put them back with :func:`restore` (see :class:`Redactor`)."""
    found = find_pii(text, kinds) if spans is None else sorted(spans, key=lambda s: s.start)
    redactor = Redactor([text])
    return redactor.redact(text, found), redactor.mapping


def restore(text: str, mapping: Mapping[str, str]) -> str:
    """Put the original values back for every placeholder of ``mapping`` found in ``text``."""
    if not mapping or "[" not in text:
        return text
    return _TOKEN.sub(lambda m: mapping.get(m.group(0), m.group(0)), text)
