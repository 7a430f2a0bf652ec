"""Whether a value found by the ``secrets`` scanner is a credential or a placeholder.

Documentation is full of things shaped like keys: ``ghp_xxxx...``, ``sk-...``,
``<your-key>``, ``YOUR_API_KEY``, ``1234567890``, AWS's ``...EXAMPLE`` keys, jwt.io's
token, PEM blocks with ``...`` inside. A value is a placeholder when it holds a doc word
(``example``, ``sample``, ``placeholder``, ``changeme``, ``dummy``, ``redacted``,
``replace``, ``insert``, ``foobar``; ``your`` and ``fake`` as words of their own), an
elision (``...``, ``***``, ``<...>``), a run of five identical characters (``xxxxx``), an
ascending or descending run of six (``123456``, ``fedcba``), or is a known documentation
value. A known format's key must also have a random part (its longest piece after the
type prefix) with enough entropy.

The odds that a random key trips one of these are small (measured on seeded random keys:
none of 2,000 per format for most formats, a handful in 10,000 for the longest).
"""

from __future__ import annotations

import itertools
import math
import re

from keel.secrets import public_prefix

__all__ = ["B64", "char_classes", "credential_ok", "is_uuid", "key_material", "placeholder",
           "plausible_key", "shannon_entropy", "wordlike"]

B64 = "A-Za-z0-9+/"

# doc words (short ones only as words of their own: a random key holds "fake" or "YOUR"
# about once in 4,000), elisions, <...>
_DOC_WORDS = re.compile(
    r"(?i:example|sample|placeholder|changeme|change[_-]me|dummy|redacted|replace|insert"
    r"|foobar)|(?<![A-Za-z])(?i:your|fake)(?![a-z])|\.\.\.|\u2026|\*\*\*|[<>]")
_REPEAT = re.compile(r"(.)\1{4}")  # five of a kind
_REPEAT_SMALL = re.compile(r"(.)\1{6}")  # seven, in hex or digits (five is too common there)
_SEGMENT = re.compile(r"[^._-]+")
# well-known documentation values that do not read as such (jwt.io's example signature)
_DOCS_VALUES = frozenset({"SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"})
# somewhere else: $VAR, ${VAR}, %VAR%, env:X, op://..., a file path, a.b.c (process.env.X)
_REFERENCE = re.compile(
    r"\$\{|\$[A-Za-z_][A-Za-z0-9_]*\Z|%[A-Za-z_][A-Za-z0-9_]*%|(?i:env|vault|file|arn|op|ref):"
    r"|(?:~|\.{1,2})?/(?:[a-z0-9_.-]{1,64}/)+"
    r"|(?:[A-Za-z_][A-Za-z0-9_]*\.)+[A-Za-z_][A-Za-z0-9_]*\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_WORDISH = re.compile(r"[A-Z]?[a-z]{3,}|[A-Z]{3,}(?![a-z])|\d{4,}")
_PEM_HEADER = re.compile(r"(?m)^[A-Za-z-]{1,32}: .*$|\\[rn]")
_NOT_B64 = re.compile(r"[^" + B64 + r"]")
_PEM_MIN = 64  # base64 characters of key material (a real key has hundreds)


def shannon_entropy(text: str) -> float:
    """Shannon entropy of ``text`` in bits per character."""
    if not text:
        return 0.0
    counts: dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def wordlike(token: str) -> float:
    """The share of ``token`` in word-like pieces (identifiers are mostly words)."""
    return sum(len(w) for w in _WORDISH.findall(token)) / len(token)


def char_classes(token: str) -> int:
    """How many of lower case, upper case and digits ``token`` has."""
    return (any(c.islower() for c in token) + any(c.isupper() for c in token)
            + any(c.isdigit() for c in token))


def _sequential(text: str, run: int) -> bool:
    """An ascending or descending run of ``run`` letters or digits (``123456``, ``fedcba``)."""
    up = down = 1
    for a, b in itertools.pairwise(text):
        step = ord(b) - ord(a) if a.isalnum() and b.isalnum() else 0
        up = up + 1 if step == 1 else 1
        down = down + 1 if step == -1 else 1
        if up >= run or down >= run:
            return True
    return False


def _counted(text: str) -> bool:
    """A run of one character, or a counted-up run: five or six long (``xxxxx``,
    ``123456``), seven or eight in a text of 16 symbols or fewer (hex, digits), where
    shorter runs occur by chance (five of a kind in about one 64-digit hex key in 1,000)."""
    if len(set(text)) > 16:
        return bool(_REPEAT.search(text)) or _sequential(text, 6)
    return bool(_REPEAT_SMALL.search(text)) or _sequential(text, 8)


def _low_grade(body: str) -> bool:
    """Repeated, counted-up or too uniform to be random."""
    return (_counted(body)
            or shannon_entropy(body) < min(3.0, math.log2(max(len(body), 2)) - 1.5))


def placeholder(value: str) -> bool:
    """Documentation, not a credential: doc words, elisions, runs, known docs values."""
    return bool(_DOC_WORDS.search(value)) or value in _DOCS_VALUES or _counted(value)


def plausible_key(token: str, body: str | None = None) -> bool:
    """A known format's match is a key when no doc word is in it and its random part (the
    longest piece of ``body``, by default what follows the type prefix) looks random."""
    if _DOC_WORDS.search(token) or any(v in token for v in _DOCS_VALUES):
        return False
    if body is None:
        body = token[public_prefix(token):]
    pieces = _SEGMENT.findall(body)
    return not pieces or not _low_grade(max(pieces, key=len))


def credential_ok(value: str, password: bool) -> bool:
    """A value after a secret name (or a URL password) that reads as a credential: 12
    characters or more (8 for a password), no spaces, two character classes, enough
    entropy, not a placeholder, not a reference to somewhere else. A key's or token's value
    of words and no digit is a name (``OpenAIKey``, ``myAppSecrets``); a password made of
    words is still a password."""
    n = len(value)
    if n < (8 if password else 12) or n > 512 or char_classes(value) < 2:
        return False
    if (not password and not any(c.isdigit() for c in value)
            and wordlike(value) > 0.6):
        return False
    if any(c.isspace() for c in value) or _UUID.fullmatch(value) or "(" in value:
        return False
    if _REFERENCE.match(value) or placeholder(value):
        return False
    return shannon_entropy(value) >= min(3.0, math.log2(n) - (1.0 if password else 0.5))


def key_material(body: str) -> bool:
    """Whether a PEM block's body (header lines and JSON-escaped newlines aside) holds key
    material: 64 base64 characters or more, with the entropy of random bytes (not ``...``,
    ``<your key here>`` or ``MIIE`` followed by x's). No doc-word test: a real key's
    hundreds of characters would hold a four-letter word too often."""
    b64 = _NOT_B64.sub("", _PEM_HEADER.sub("\n", body.replace("\\n", "\n")))
    return len(b64) >= _PEM_MIN and shannon_entropy(b64) >= 4.5


def is_uuid(token: str) -> bool:
    """Whether ``token`` holds a UUID (an identifier, never a credential)."""
    return _UUID.search(token) is not None
