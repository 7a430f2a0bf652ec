"""PII redaction of text and JSON bodies (regular expressions plus checksums), offline.

Each match becomes a typed placeholder (``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[IBAN]``,
``[SSN]``, ``[IP]``). Card numbers must pass the Luhn check and IBANs the mod-97 check, so
order numbers and other long digit runs are left alone. Used for content capture
``redacted`` (what is stored for a feature); the guard's request-path scanners build on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
_SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")
# an international number (+country ...), (415) 555-0100, or 415-555-0100 / 415.555.0100;
# plain space-separated digit groups are left alone (they are more often ids or amounts)
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,4}"
                    r"|\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?!\w)")
_IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")


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
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in moved))
    except ValueError:
        return False
    return number % 97 == 1


def _card(m: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", m.group(0))
    return "[CARD]" if 13 <= len(digits) <= 19 and luhn_ok(digits) else m.group(0)


def _iban(m: re.Match[str]) -> str:
    return "[IBAN]" if iban_ok(m.group(0)) else m.group(0)


_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str] | str], ...] = (
    (_EMAIL, "[EMAIL]"),
    (_IBAN, _iban),
    (_CARD, _card),
    (_SSN, "[SSN]"),
    (_IPV4, "[IP]"),
    (_PHONE, "[PHONE]"),
)


def redact_text(text: str) -> str:
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    return text


def redact_json(value: Any) -> Any:
    """A copy of ``value`` with every string redacted (keys are kept as they are)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v) for v in value]
    return value
