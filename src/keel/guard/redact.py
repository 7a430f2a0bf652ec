"""PII redaction of text and JSON bodies (regular expressions plus checksums), offline.

Each match becomes a typed placeholder (``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[IBAN]``,
``[SSN]``, ``[IP]``, ``[ADDRESS]``). Card numbers must pass the Luhn check and IBANs the
mod-97 check, so order numbers and other long digit runs are left alone. Used for content
capture ``redacted`` (what is stored for a feature). The patterns live in
:mod:`keel.guard.pii`, shared with the ``pii`` scanner and request-scoped reversible
redaction.
"""

from __future__ import annotations

from typing import Any

from keel.guard.pii import PLACEHOLDER, PiiSpan, find_pii, iban_ok, luhn_ok, replace_spans

__all__ = ["iban_ok", "luhn_ok", "redact_json", "redact_text"]


def _typed(span: PiiSpan) -> str:
    return f"[{PLACEHOLDER[span.kind]}]"


def redact_text(text: str) -> str:
    spans = find_pii(text)
    return replace_spans(text, spans, _typed) if spans else text


def redact_json(value: Any) -> Any:
    """A copy of ``value`` with every string redacted (keys are kept as they are)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v) for v in value]
    return value
