"""``secrets``: credentials in prompts or answers.

Known formats first, each reported under its provider's kind (score 1.0 unless noted):
AWS access key ids (``AKIA``/``ASIA``) and the 40-character secret key when it follows one
or an ``aws_secret_access_key``-like name; GCP API keys (``AIza``), service-account key
files (``private_key_id``; the ``"type": "service_account"`` marker alone scores 0.9);
Azure storage connection strings and account keys, ``SharedAccessKey=`` values, SAS
signatures (0.9); OpenAI (``sk-``, ``sk-proj-``, ``sk-svcacct-``, ``sk-admin-``), Anthropic
(``sk-ant-``), GitHub (``ghp_``, ``gho_``, ``ghu_``, ``ghs_``, ``ghr_``, ``github_pat_``),
GitLab (``glpat-``, ``gldt-``, ``glrt-`` ...), Slack tokens (``xoxb-`` ..., ``xapp-``) and
incoming webhooks, Stripe live secret/restricted keys (``sk_live_``, ``rk_live_``) and
webhook secrets, Hugging Face (``hf_``), Groq (``gsk_``), xAI (``xai-``), npm (``npm_``),
PyPI (``pypi-``), SendGrid (``SG.``); PEM private keys (RSA, EC, DSA, OpenSSH, PKCS#8,
encrypted, PGP) with key material inside; JWTs (three base64url parts whose header decodes
to a JSON object with ``alg``). A span found by one of these is not looked at again by the
generic rules, so a provider's key is never reported as a ``credential``.

Placeholders are not credentials (``secret_values`` judges): a known format is reported
only when its random part (the longest piece after the type prefix) is plausible, and no
rule reports a value that reads like documentation: words such as ``example``, ``your``,
``dummy``, ``changeme``, ``placeholder``, ``redacted``; ``...``, ``<...>``, ``***``; a run
of five identical characters (``xxxxx``); an ascending or descending run of six
(``123456``, ``abcdef``); too little entropy; AWS's and jwt.io's documentation values.

Then the generic rules:

* ``credential`` (0.8): the value of a secret-named variable, parameter or header
  (``keel.secrets.is_secret_name``: ``API_KEY=...``, ``export GITHUB_TOKEN=...``,
  ``"apiKey": "..."``, ``db_password: ...``, ``?sig=...``, ``Authorization: Bearer ...``),
  with or without spaces around ``=``, ``:``, ``=>`` or ``:=``, quoted or not (JSON
  escaped inside a string too: ``{\\"api_key\\": \\"...\\"}``), or the token
  after a bare ``Bearer``/``token``; and the password of a URL (``scheme://user:pw@host``).
  The value must have 12 characters or more (8 for a password), no spaces, at least two of
  lower case, upper case and digits, and an entropy of at least 3.0 bits per character (less
  for a short password: ``log2(length) - 1``); a key's value of words and no digit is a
  name (``OpenAIKey``); references to somewhere else are not values (``${VAR}``,
  ``env:VAR``, ``process.env.X``, ``os.environ[...]``).
* ``high_entropy`` (0.6): a run of at least ``entropy_min_length`` (default 24) and at most
  512 base64/base64url characters anywhere, with lower case, upper case and digits, an
  entropy of at least ``min(4.0, log2(length) - 0.9)`` bits per character, and at most 60%
  of its characters in word-like pieces (a capitalised or lower-case run of 3+ letters, an
  all-caps run of 3+, 4+ digits). Random base62/base64 tokens pass (about 96% at 24
  characters, 98% from 32 on); identifiers such as ``getUserAccountSettings2024`` do not.

Never flagged by ``high_entropy``, because they are identifiers rather than credentials in
every ordinary context: UUIDs; runs of hexadecimal digits only (hashes, commit ids); runs
right after a hash-like word (``sha256``, ``md5``, ``commit``, ``digest``, ``checksum``,
``integrity``, ``etag``, ``fingerprint``, SRI ``sha384-``); base64 data after ``base64,``
(``data:`` URIs such as inline images); and URL path segments (document ids, slugs). Runs
longer than 512 characters are data, not tokens.

Every pattern is linear in the text (bounded repetitions, no nested quantifiers that can
split a run two ways): the scanner runs in the request path.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson

from keel.guard.scanners.base import (
    Finding,
    ScanContext,
    ScannerConfigError,
    Span,
    register_scanner,
)
from keel.guard.scanners.secret_values import (
    B64,
    char_classes,
    credential_ok,
    is_uuid,
    key_material,
    placeholder,
    plausible_key,
    shannon_entropy,
    wordlike,
)
from keel.guard.scanners.support import BaseScanner, Options, count_kinds
from keel.secrets import (
    AUTH_SCHEMES,
    SECRET_NAME_WORDS,
    is_identifier_name,
    is_password_name,
    is_secret_name,
    strip_scheme,
)

# --- known formats ----------------------------------------------------------------------------


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
    """A known format. The span is the ``value`` group if the pattern has one, else the whole
    match; the random part checked for plausibility is the ``body`` group, else ``value``,
    else what follows the type prefix."""

    kind: str
    needles: tuple[str, ...]  # the regex runs only if one of these is in the text
    pattern: re.Pattern[str]
    score: float = 1.0
    valid: Callable[[str], bool] | None = None
    plausible: bool = True  # checked for placeholders
    # run the pattern only around each occurrence of these words (found with str.find, in
    # the lower-cased text if ``any_case``), starting at most ``seek_back`` characters before
    # one; the words then stand for the needles
    seek: tuple[str, ...] = ()
    seek_back: int = 0
    any_case: bool = False


_B64 = B64  # the base64 alphabet, as a character class body
_RULES: tuple[_Rule, ...] = (
    _Rule("aws_access_key_id", ("AKIA", "ASIA"),
          re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)(?P<body>[A-Z0-9]{16})(?![A-Za-z0-9])")),
    _Rule("aws_secret_access_key", ("ecret", "ECRET"), re.compile(
        r"(?i:aws[_ .-]?secret(?:[_ .-]?access)?[_ .-]?key|secret[_ .-]?access[_ .-]?key)"
        r"[\"']?[ \t]{0,8}(?:[:=]|=>)?[ \t]{0,8}[\"']?"
        r"(?P<value>[" + _B64 + r"]{40})(?![" + _B64 + r"=])"),
          seek=("secret",), seek_back=4, any_case=True),
    _Rule("gcp_api_key", ("AIza",),
          re.compile(r"AIza(?P<body>[0-9A-Za-z_-]{35})(?![0-9A-Za-z_-])")),
    _Rule("gcp_service_account", ("private_key_id",),
          re.compile(r"\"private_key_id\"[ \t]{0,8}:[ \t]{0,8}\"(?P<body>[0-9a-f]{40})\"")),
    _Rule("gcp_service_account", ("service_account",),
          re.compile(r"\"type\"[ \t]{0,8}:[ \t]{0,8}\"service_account\""), 0.9, plausible=False),
    _Rule("azure_storage", ("AccountKey=",), re.compile(
        r"(?:DefaultEndpointsProtocol=https?;)?(?:AccountName=[A-Za-z0-9-]{1,64};)?"
        r"AccountKey=(?P<body>[" + _B64 + r"]{40,})={0,2}")),
    _Rule("azure_shared_access_key", ("SharedAccessKey=",),
          re.compile(r"SharedAccessKey=(?P<body>[" + _B64 + r"]{30,})={0,2}")),
    _Rule("azure_sas", ("sig=",), re.compile(
        r"sv=\d{4}-\d{2}-\d{2}(?:&[^\s\"'&]{0,100}){0,12}?&sig="
        r"(?P<body>[A-Za-z0-9%+/=]{30,})"), 0.9),
    _Rule("anthropic_key", ("sk-ant-",), re.compile(r"sk-ant-[A-Za-z0-9_-]{20,}")),
    _Rule("openai_key", ("sk-",), re.compile(
        r"(?<![A-Za-z0-9_-])sk-(?:(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}"
        r"|[A-Za-z0-9]{32,})(?![A-Za-z0-9_-])")),
    _Rule("github_token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), re.compile(
        r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{50,})"
        r"(?![A-Za-z0-9_])"), seek=("gh", "github_pat_")),
    _Rule("gitlab_token", ("glpat-", "gldt-", "glrt-", "glptt-", "glft-", "glsoat-", "gloas-",
                           "glcbt-"), re.compile(
        r"(?<![A-Za-z0-9_-])gl(?:pat|dt|rt|ptt|ft|soat|oas|cbt)-[A-Za-z0-9_-]{20,}"
        r"(?![A-Za-z0-9_-])"), seek=("gl",)),
    _Rule("slack_token", ("xox", "xapp-"),
          re.compile(r"(?:xox[abeprs]|xapp)-[A-Za-z0-9-]{10,}")),
    _Rule("slack_webhook", ("hooks.slack.com",), re.compile(
        r"https://hooks\.slack\.com/services/T[A-Z0-9]{1,16}/B[A-Z0-9]{1,16}/"
        r"(?P<body>[A-Za-z0-9]{16,})")),
    _Rule("stripe_key", ("_live_", "whsec_"), re.compile(
        r"(?<![A-Za-z0-9_])(?:(?:sk|rk)_live_[A-Za-z0-9]{16,}|whsec_[A-Za-z0-9]{24,})")),
    _Rule("huggingface_token", ("hf_",),
          re.compile(r"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{30,}(?![A-Za-z0-9_])")),
    _Rule("groq_key", ("gsk_",),
          re.compile(r"(?<![A-Za-z0-9_])gsk_[A-Za-z0-9]{48,}(?![A-Za-z0-9_])")),
    _Rule("xai_key", ("xai-",),
          re.compile(r"(?<![A-Za-z0-9_-])xai-[A-Za-z0-9]{60,}(?![A-Za-z0-9_-])")),
    _Rule("npm_token", ("npm_",),
          re.compile(r"(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36}(?![A-Za-z0-9_])")),
    _Rule("pypi_token", ("pypi-",), re.compile(r"pypi-AgE(?P<body>[A-Za-z0-9_-]{50,})")),
    _Rule("sendgrid_key", ("SG.",), re.compile(
        r"(?<![A-Za-z0-9_.-])SG\.[A-Za-z0-9_-]{22}\.(?P<body>[A-Za-z0-9_-]{43})"
        r"(?![A-Za-z0-9_-])")),
    _Rule("jwt", ("eyJ",), re.compile(
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.(?P<body>[A-Za-z0-9_-]*)"),
          1.0, _jwt_ok),
)
KINDS = ("private_key", *dict.fromkeys(r.kind for r in _RULES), "credential", "high_entropy")

# PEM private keys: the block's base64 (header lines and JSON-escaped newlines aside) must
# hold key material, not "..." or "<your key here>"
_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]{1,16} ){0,4}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]{1,16} ){0,4}PRIVATE KEY(?: BLOCK)?-----")
# what may follow a BEGIN line when the END line is missing (a key cut short)
_PEM_LINES = re.compile(
    r"(?:(?:\r?\n|\\r?\\n)[ \t]{0,8}(?:[" + _B64 + r"=]{1,4096}|[A-Za-z-]{1,32}: [^\r\n\\]{0,200})?"
    r"[ \t]{0,8})*")
_PEM_SPAN = 16384


def _private_keys(text: str) -> Iterator[Span]:
    ends: list[tuple[int, int]] | None = None
    pos = 0
    for m in _PEM_BEGIN.finditer(text):
        if m.start() < pos:
            continue
        if ends is None:
            ends = [e.span() for e in _PEM_END.finditer(text)]
        i = bisect_left(ends, (m.end(), 0))
        if i < len(ends) and ends[i][0] - m.end() <= _PEM_SPAN:
            body, stop = text[m.end():ends[i][0]], ends[i][1]
        else:  # no END line: the key material that follows, if any
            lines = _PEM_LINES.match(text, m.end(), min(len(text), m.end() + _PEM_SPAN))
            body = lines.group(0).rstrip() if lines else ""
            stop = m.end() + len(body)
        if key_material(body):
            yield Span("private_key", m.start(), stop)
            pos = stop


# --- generic rules ----------------------------------------------------------------------------

# NAME = value: found from the separator (a fast scan), the name read backwards from it
_SEPARATOR = re.compile(r"=>|:=|=(?!=)|:")
_NAME_BEFORE = re.compile(r"[A-Za-z0-9_.-]{1,64}\\?[\"']?[ \t]{0,8}\Z")  # \" in escaped JSON
_WORDS = "|".join(sorted(SECRET_NAME_WORDS | {"id"}, key=len, reverse=True))
_SECRET_END = re.compile(r"(?i:" + _WORDS + r")(?:[_-]?\d{1,3})?\\?[\"']?[ \t]{0,8}\Z")
_BARE = re.compile(r"(?<![A-Za-z])(?i:bearer|token)[ \t]{1,8}(?=[A-Za-z0-9])")
# how the word before a separator ends when the name may be a secret's (a cheap first test)
_WORD_ENDINGS = tuple(SECRET_NAME_WORDS | {"id"})
_NAME_TAIL = " \t\"'\\"
_VALUE = re.compile(
    r"[ \t]{0,8}(?:\\\"(?P<eq>[^\"\\\n]{1,512})\\\"|\"(?P<dq>[^\"\n]{1,512})\""
    r"|'(?P<sq>[^'\n]{1,512})'|`(?P<bq>[^`\n]{1,512})`"
    r"|(?P<bare>[^\s\"'`,;&<>{}]{1,512}))")
_SCHEMES = frozenset(AUTH_SCHEMES)
# a scheme URL-encoded into the value (KEEL_OTLP_HEADERS style: authorization=Bearer%20X)
_ENCODED_SCHEME = re.compile(r"(?i:" + "|".join(AUTH_SCHEMES) + r")(?:%20|\+)+")
_URL_PASSWORD = re.compile(r"://[^\s/@:]{0,128}:(?P<value>[^\s/@]{1,256})@")
_TRAILING = ".,:;!?)]}"
_AT_HOST = re.compile(r"@[A-Za-z0-9-]{1,63}\.[A-Za-z0-9.-]{2,}")  # SECRET@host: not the value

_RUN = re.compile(r"[A-Za-z0-9+/_-]{12,}=*")
_HEXISH = re.compile(r"[0-9a-fA-F-]+")
_HASH_BEFORE = re.compile(
    r"(?i:(?<![a-z])(?:sha-?\d*|md5|hash|digest|checksum|commit|integrity|etag|fingerprint"
    r"|rev(?:ision)?|nonce|uuid|guid|id))\W{0,4}$")
_SRI = re.compile(r"sha(?:256|384|512)-")
_AWS_SECRET = re.compile(r"(?<![" + _B64 + r"])[" + _B64 + r"]{40}(?![" + _B64 + r"=])")
_LOOKBACK = 40
class _Settled:
    """Disjoint spans already decided (found, or looked at and dismissed), sorted by start,
    so that whether a new span overlaps one is a binary search."""

    __slots__ = ("ends", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect_left(self.starts, end) - 1  # the last span starting before ``end``
        return i >= 0 and self.ends[i] > start

    def add(self, start: int, end: int) -> bool:
        """Settle ``[start, end)`` unless it overlaps a settled span; whether it did."""
        if self.overlaps(start, end):
            return False
        i = bisect_left(self.starts, start)
        self.starts.insert(i, start)
        self.ends.insert(i, end)
        return True


@register_scanner("secrets")
class SecretsScanner(BaseScanner):
    """Options: ``kinds`` (default all), ``entropy`` (the two generic rules, default true),
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
        self.private_key = "private_key" in wanted
        self.rules = tuple(r for r in _RULES if r.kind in wanted)
        entropy = opts.flag("entropy", True)
        self.credential = entropy and "credential" in wanted
        self.high_entropy = entropy and "high_entropy" in wanted
        self.min_length = opts.whole("entropy_min_length", "24", 24, minimum=12)

    def check(self, text: str, ctx: ScanContext) -> Finding:
        found: list[tuple[Span, float]] = []
        seen = _Settled()  # spans looked at and settled: later rules skip them
        low = text.lower()
        at = low if len(low) == len(text) else None  # offsets in ``low`` are offsets in text
        if self.private_key and "PRIVATE KEY" in text:
            for span in _private_keys(text):
                found.append((span, 1.0))
                seen.add(span.start, span.end)
        for rule in self.rules:
            if rule.seek:
                hay = at if rule.any_case else text
                if hay is not None and not any(w in hay for w in rule.seek):
                    continue
            elif not any(n in text for n in rule.needles):
                continue
            self._known(rule, text, at, found, seen)
        aws_ids = [s for s, _ in found if s.kind == "aws_access_key_id"]
        if aws_ids and any(r.kind == "aws_secret_access_key" for r in self.rules):
            found.extend(self._aws_pairs(text, aws_ids, seen))
        if self.credential:
            found.extend(self._assignments(text, at, seen))
        if self.high_entropy:
            found.extend(self._entropy(text, seen))
        if not found:
            return self.clean("no credentials found")
        found.sort(key=lambda f: f[0].start)
        matches = [s for s, _ in found]
        score = max(sc for _, sc in found)
        return self.finding(score, matches, f"credentials: {count_kinds(matches)}")

    @staticmethod
    def _known(rule: _Rule, text: str, low: str | None, found: list[tuple[Span, float]],
               seen: _Settled) -> None:
        groups = rule.pattern.groupindex
        for m in _matches(rule, text, low):
            start, end = m.span("value") if "value" in groups else m.span()
            if seen.overlaps(start, end):
                continue
            token = m.group(0)
            if rule.valid is not None and not rule.valid(token):
                continue
            seen.add(start, end)  # a placeholder in a known format is settled too
            span = Span(rule.kind, start, end)
            if rule.plausible:
                body = m.group("body") if "body" in groups else (
                    m.group("value") if "value" in groups else None)
                if not plausible_key(token, body):
                    continue
            found.append((span, rule.score))

    @staticmethod
    def _aws_pairs(text: str, ids: list[Span], seen: _Settled) -> list[tuple[Span, float]]:
        """A 40-character base64 run within 200 characters after an access key id."""
        out = []
        for key in ids:
            for m in _AWS_SECRET.finditer(text, key.end, min(len(text), key.end + 200)):
                if (shannon_entropy(m.group(0)) >= 3.5 and plausible_key(m.group(0), m.group(0))
                        and seen.add(m.start(), m.end())):
                    out.append((Span("aws_secret_access_key", m.start(), m.end()), 1.0))
        return out

    @staticmethod
    def _assignments(text: str, low: str | None, seen: _Settled) -> list[tuple[Span, float]]:
        """Values of secret-named variables, parameters and headers, and URL passwords."""
        out: list[tuple[Span, float]] = []
        done = 0  # the end of the last value read: a separator inside it is not a new one
        for m in _SEPARATOR.finditer(text):
            if m.start() < done:
                continue
            tail = text[max(0, m.start() - 24):m.start()].lower().rstrip(_NAME_TAIL)
            if not tail.rstrip("0123456789").rstrip("_-").endswith(_WORD_ENDINGS):
                continue
            before = _NAME_BEFORE.search(text, max(0, m.start() - 74), m.start())
            if before is None or not _SECRET_END.search(before.group(0)):
                continue
            name = before.group(0).rstrip(" \t\"'\\")
            secret = is_secret_name(name)
            if not secret and not is_identifier_name(name):
                continue
            value = _value_at(text, m.end())
            if value is None:
                continue
            start, end = value
            done = end
            # an identifier's value (public_key, next_page_token) is settled, not flagged
            if (seen.add(start, end) and secret
                    and credential_ok(text[start:end], is_password_name(name))):
                out.append((Span("credential", start, end), 0.8))
        for m in _seek(_BARE, text, low, ("bearer", "token"), 0):  # "Bearer X", "token X"
            value = _value_at(text, m.end())
            if value is not None and seen.add(*value) and credential_ok(
                    text[value[0]:value[1]], False):
                out.append((Span("credential", *value), 0.8))
        if "://" in text and "@" in text:
            for u in _URL_PASSWORD.finditer(text):
                start, end = u.span("value")
                if seen.add(start, end) and credential_ok(u.group("value"), True):
                    out.append((Span("credential", start, end), 0.8))
        return out

    def _entropy(self, text: str, seen: _Settled) -> list[tuple[Span, float]]:
        out: list[tuple[Span, float]] = []
        for m in _RUN.finditer(text):
            start, end = m.span()
            token = m.group(0).rstrip("=")
            if len(token) < self.min_length or len(token) > 512:
                continue
            if seen.overlaps(start, end):
                continue
            before = text[max(0, start - _LOOKBACK):start]
            if "\n" in before:
                before = before.rsplit("\n", 1)[1]
            if _benign(token, before):
                continue
            if (char_classes(token) == 3
                    and shannon_entropy(token) >= min(4.0, math.log2(len(token)) - 0.9)
                    and wordlike(token) <= 0.6 and not placeholder(token)):
                out.append((Span("high_entropy", start, end), 0.6))
        return out


_SEEK_WINDOW = 256  # a match found by ``_seek`` ends within this many characters of its word


def _seek(pattern: re.Pattern[str], text: str, low: str | None, words: tuple[str, ...],
          back: int) -> Iterator[re.Match[str]]:
    """The matches of ``pattern`` that begin at most ``back`` characters before one of
    ``words`` in ``low`` (``text`` itself or its lower-cased copy; found by ``str.find``,
    far faster than the regex engine's scan of a pattern that opens with a lookbehind or an
    ignored case); the regex's own scan when ``low`` is None (its offsets would not be
    those of ``text``)."""
    if low is None:
        yield from pattern.finditer(text)
        return
    starts = sorted({i for w in words for i in _find_all(low, w)})
    pos = 0
    for i in starts:
        m = pattern.search(text, max(pos, i - back), min(len(text), i + _SEEK_WINDOW))
        if m is not None and m.start() <= i:
            yield m
            pos = m.end()


def _find_all(text: str, word: str) -> Iterator[int]:
    i = text.find(word)
    while i >= 0:
        yield i
        i = text.find(word, i + 1)


def _matches(rule: _Rule, text: str, low: str | None) -> Iterator[re.Match[str]]:
    if rule.seek:
        hay = low if rule.any_case else text
        return _seek(rule.pattern, text, hay, rule.seek, rule.seek_back)
    return rule.pattern.finditer(text)


def _value_at(text: str, pos: int) -> tuple[int, int] | None:
    """The span of the value that starts at ``pos`` (quoted or not), past an authorization
    scheme (``Bearer``)."""
    v = _VALUE.match(text, pos)
    if v is None:
        return None
    group = next(g for g in ("eq", "dq", "sq", "bq", "bare") if v.group(g) is not None)
    start, end = v.span(group)
    raw = text[start:end]
    if group == "bare":
        if raw.lower() in _SCHEMES:  # "Authorization: Bearer TOKEN"
            nxt = _VALUE.match(text, end)
            if nxt is None or nxt.group("bare") is None or end == nxt.start("bare"):
                return None
            start, end = nxt.span("bare")
            raw = text[start:end]
        scheme = _ENCODED_SCHEME.match(raw)
        if scheme:
            start, raw = start + scheme.end(), raw[scheme.end():]
        host = _AT_HOST.search(raw)
        if host:
            raw = raw[:host.start()]
            end = start + len(raw)
        stripped = raw.rstrip(_TRAILING)
        end -= len(raw) - len(stripped)
        return (start, end) if stripped else None
    token = strip_scheme(raw)  # '"Bearer TOKEN"'
    if token != raw:
        start += raw.rindex(token)
        end = start + len(token)
    return start, end


def _benign(token: str, before: str) -> bool:
    if is_uuid(token) or _HEXISH.fullmatch(token) or _SRI.match(token):
        return True
    if _HASH_BEFORE.search(before) or before.endswith("base64,"):
        return True
    # inside a URL (same whitespace-free word as a '://' or 'www.'), but not in its query
    word = "" if not before or before[-1].isspace() else before.split()[-1]
    return ("://" in word or word.startswith("www.")) and "?" not in word
