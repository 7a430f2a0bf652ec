"""``secrets``: credentials in prompts or answers.

Known formats (score 1.0 unless noted): AWS access key ids (``AKIA``/``ASIA``) and the
40-character secret key when it follows one or an ``aws_secret_access_key``-like name; GCP
API keys (``AIza``), service-account key files (``private_key_id``; the ``"type":
"service_account"`` marker alone scores 0.9); Azure storage connection strings and account
keys, ``SharedAccessKey=`` values, SAS signatures (0.9); OpenAI (``sk-``, ``sk-proj-``,
``sk-svcacct-``, ``sk-admin-``), Anthropic (``sk-ant-``), GitHub (``ghp_``, ``gho_``,
``ghu_``, ``ghs_``, ``ghr_``, ``github_pat_``), Slack tokens (``xoxb-`` ...) and incoming
webhooks, Stripe live secret/restricted keys (``sk_live_``, ``rk_live_``) and webhook
secrets; PEM private keys (RSA, EC, DSA, OpenSSH, PKCS#8, encrypted, PGP); JWTs (three
base64url parts whose header decodes to a JSON object with ``alg``).

Then two entropy rules over the remaining runs of base64/base64url characters:

* ``credential`` (0.8): a run of 12 or more characters right after a secret-like name and
  ``=``/``:``/a space (``api_key = "..."``, ``token: ...``, ``Authorization: Bearer ...``,
  ``?sig=...``) with at least two of lower case, upper case and digits and a Shannon entropy
  of at least 3.0 bits per character (placeholders like ``your_api_key_here`` or ``xxxx``
  fail that).
* ``high_entropy`` (0.6): a run of at least ``entropy_min_length`` (default 24) and at most
  512 characters anywhere, with lower case, upper case and digits, an entropy of at least
  ``min(4.0, log2(length) - 0.9)`` bits per character, and at most 60% of its characters in
  word-like pieces (a capitalised or lower-case run of 3+ letters, an all-caps run of 3+, 4+
  digits). Random base62/base64 tokens pass (about 96% at 24 characters, 98% from 32 on);
  identifiers such as ``getUserAccountSettings2024`` are mostly words and do not.

Never flagged by the entropy rules, because they are identifiers rather than credentials in
every ordinary context: UUIDs; runs of hexadecimal digits only (hashes, commit ids) unless a
secret-like name precedes them; runs right after a hash-like word (``sha256``, ``md5``,
``commit``, ``digest``, ``checksum``, ``integrity``, ``etag``, ``fingerprint``, SRI
``sha384-``); base64 data after ``base64,`` (``data:`` URIs such as inline images); and URL
path segments (document ids, slugs). Runs longer than 512 characters are data, not tokens.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from keel.guard.scanners.base import (
    Finding,
    ScanContext,
    ScannerConfigError,
    Span,
    register_scanner,
)
from keel.guard.scanners.support import BaseScanner, Options, count_kinds


def shannon_entropy(text: str) -> float:
    """Shannon entropy of ``text`` in bits per character."""
    if not text:
        return 0.0
    counts: dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _jwt_ok(token: str) -> bool:
    head = token.split(".", 1)[0]
    try:
        raw = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
        header = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return False
    return isinstance(header, dict) and isinstance(header.get("alg"), str)


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    needles: tuple[str, ...]  # the regex runs only if one of these is in the text
    pattern: re.Pattern[str]
    score: float = 1.0
    valid: Callable[[str], bool] | None = None


_B64 = "A-Za-z0-9+/"
_RULES: tuple[_Rule, ...] = (
    _Rule("private_key", ("PRIVATE KEY",), re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]{0,16384}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)?")),
    _Rule("aws_access_key_id", ("AKIA", "ASIA"),
          re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])")),
    _Rule("aws_secret_access_key", ("ecret", "ECRET"), re.compile(
        r"(?i:aws[_ .-]?secret(?:[_ .-]?access)?[_ .-]?key|secret[_ .-]?access[_ .-]?key)"
        r"[\"']?\s*(?:[:=]|=>)?\s*[\"']?([" + _B64 + r"]{40})(?![" + _B64 + r"=])")),
    _Rule("gcp_api_key", ("AIza",), re.compile(r"AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])")),
    _Rule("gcp_service_account", ("private_key_id",),
          re.compile(r"\"private_key_id\"\s*:\s*\"[0-9a-f]{40}\"")),
    _Rule("gcp_service_account", ("service_account",),
          re.compile(r"\"type\"\s*:\s*\"service_account\""), 0.9),
    _Rule("azure_storage", ("AccountKey=",), re.compile(
        r"(?:DefaultEndpointsProtocol=https?;)?(?:AccountName=[A-Za-z0-9-]+;)?"
        r"AccountKey=[" + _B64 + r"]{40,}={0,2}")),
    _Rule("azure_shared_access_key", ("SharedAccessKey=",),
          re.compile(r"SharedAccessKey=[" + _B64 + r"]{30,}={0,2}")),
    _Rule("azure_sas", ("sig=",), re.compile(
        r"sv=\d{4}-\d{2}-\d{2}&[^\s\"']{0,400}?sig=[A-Za-z0-9%+/=]{30,}"), 0.9),
    _Rule("anthropic_key", ("sk-ant-",), re.compile(r"sk-ant-[A-Za-z0-9_-]{20,}")),
    _Rule("openai_key", ("sk-",), re.compile(
        r"(?<![A-Za-z0-9_-])sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}"
        r"|[A-Za-z0-9]{32,})(?![A-Za-z0-9_-])")),
    _Rule("github_token", ("gh", "github_pat_"), re.compile(
        r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{50,})"
        r"(?![A-Za-z0-9_])")),
    _Rule("slack_token", ("xox",), re.compile(r"xox[abprs]-[A-Za-z0-9-]{10,}")),
    _Rule("slack_webhook", ("hooks.slack.com",), re.compile(
        r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{16,}")),
    _Rule("stripe_key", ("_live_", "whsec_"), re.compile(
        r"(?<![A-Za-z0-9_])(?:(?:sk|rk)_live_[A-Za-z0-9]{16,}|whsec_[A-Za-z0-9]{24,})")),
    _Rule("jwt", ("eyJ",), re.compile(
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
          1.0, _jwt_ok),
)
KINDS = (*dict.fromkeys(r.kind for r in _RULES), "credential", "high_entropy")

_AWS_SECRET = re.compile(r"(?<![" + _B64 + r"])[" + _B64 + r"]{40}(?![" + _B64 + r"=])")
_RUN = re.compile(r"[A-Za-z0-9+/_=-]{12,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEXISH = re.compile(r"[0-9a-fA-F-]+")
_KEY_BEFORE = re.compile(
    r"(?i:(?<![a-z])(?:api[_-]?key|apikey|key|secret|token|passw(?:or)?d|pwd|pass|auth"
    r"|authorization|credentials?|sig|signature|session[_-]?id|client[_-]?secret)"
    r"[\"']?\s*(?:[:=]|=>)\s*[\"']?|(?<![a-z])(?:bearer|token)\s+)$")
_HASH_BEFORE = re.compile(
    r"(?i:(?<![a-z])(?:sha-?\d*|md5|hash|digest|checksum|commit|integrity|etag|fingerprint"
    r"|rev(?:ision)?|nonce|uuid|guid|id))\W{0,4}$")
_SRI = re.compile(r"sha(?:256|384|512)-")
_LOOKBACK = 40


_WORDISH = re.compile(r"[A-Z]?[a-z]{3,}|[A-Z]{3,}(?![a-z])|\d{4,}")


def _wordlike(token: str) -> float:
    """The share of ``token`` in word-like pieces (identifiers are mostly words)."""
    return sum(len(w) for w in _WORDISH.findall(token)) / len(token)


def _classes(token: str) -> int:
    return (any(c.islower() for c in token) + any(c.isupper() for c in token)
            + any(c.isdigit() for c in token))


@register_scanner("secrets")
class SecretsScanner(BaseScanner):
    """Options: ``kinds`` (default all), ``entropy`` (the two entropy rules, default true),
    ``entropy_min_length`` (default 24), ``threshold`` (default 0.5: everything triggers;
    0.7 ignores ``high_entropy`` alone, 0.85 also ``credential``)."""

    options = ("kinds", "entropy", "entropy_min_length")
    uses_threshold = True
    default_threshold = 0.5

    def configure(self, opts: Options) -> None:
        kinds = opts.strings("kinds", "[aws_access_key_id, private_key, jwt]", required=False)
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            raise ScannerConfigError(f"unknown kind '{bad[0]}'; known: {', '.join(KINDS)}",
                                     key="kinds")
        wanted = set(kinds or KINDS)
        self.rules = tuple(r for r in _RULES if r.kind in wanted)
        entropy = opts.flag("entropy", True)
        self.credential = entropy and "credential" in wanted
        self.high_entropy = entropy and "high_entropy" in wanted
        self.min_length = opts.whole("entropy_min_length", "24", 24, minimum=12)

    def check(self, text: str, ctx: ScanContext) -> Finding:
        found: list[tuple[Span, float]] = []
        for rule in self.rules:
            if not any(n in text for n in rule.needles):
                continue
            for m in rule.pattern.finditer(text):
                if rule.valid is not None and not rule.valid(m.group(0)):
                    continue
                start, end = m.span(1) if m.re.groups else m.span()
                found.append((Span(rule.kind, start, end), rule.score))
        aws_ids = [s for s, _ in found if s.kind == "aws_access_key_id"]
        if aws_ids and any(r.kind == "aws_secret_access_key" for r in self.rules):
            found.extend(self._aws_pairs(text, aws_ids, found))
        if self.credential or self.high_entropy:
            found.extend(self._entropy(text, [s for s, _ in found]))
        if not found:
            return self.clean("no credentials found")
        found.sort(key=lambda f: f[0].start)
        matches = [s for s, _ in found]
        score = max(sc for _, sc in found)
        return self.finding(score, matches, f"credentials: {count_kinds(matches)}")

    def _aws_pairs(self, text: str, ids: list[Span],
                   found: list[tuple[Span, float]]) -> list[tuple[Span, float]]:
        """A 40-character base64 run within 200 characters after an access key id."""
        out = []
        for key in ids:
            for m in _AWS_SECRET.finditer(text, key.end, min(len(text), key.end + 200)):
                if (shannon_entropy(m.group(0)) >= 3.5
                        and not any(m.start() < s.end and s.start < m.end() for s, _ in found)):
                    out.append((Span("aws_secret_access_key", m.start(), m.end()), 1.0))
        return out

    def _entropy(self, text: str, taken: list[Span]) -> list[tuple[Span, float]]:
        out: list[tuple[Span, float]] = []
        for m in _RUN.finditer(text):
            start, end = m.span()
            token = m.group(0).rstrip("=")
            if len(token) < 12 or len(token) > 512:
                continue
            if any(start < s.end and s.start < end for s in taken):
                continue
            before = text[max(0, start - _LOOKBACK):start]
            if "\n" in before:
                before = before.rsplit("\n", 1)[1]
            if self.credential and _KEY_BEFORE.search(before):
                if (len(token) >= 12 and _classes(token) >= 2 and not _UUID.fullmatch(token)
                        and shannon_entropy(token) >= 3.0):
                    out.append((Span("credential", start, end), 0.8))
                continue
            if not self.high_entropy or len(token) < self.min_length:
                continue
            if _benign(token, before):
                continue
            if (_classes(token) == 3
                    and shannon_entropy(token) >= min(4.0, math.log2(len(token)) - 0.9)
                    and _wordlike(token) <= 0.6):
                out.append((Span("high_entropy", start, end), 0.6))
        return out


def _benign(token: str, before: str) -> bool:
    if _UUID.search(token) or _HEXISH.fullmatch(token) or _SRI.match(token):
        return True
    if _HASH_BEFORE.search(before) or before.endswith("base64,"):
        return True
    # inside a URL (same whitespace-free word as a '://' or 'www.'), but not in its query
    word = "" if not before or before[-1].isspace() else before.split()[-1]
    return ("://" in word or word.startswith("www.")) and "?" not in word
