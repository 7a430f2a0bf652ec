"""Configured secrets, found and replaced in any text keel sends, stores or logs.

``SecretRedactor.from_settings`` collects every secret the process holds: each provider's
``api_key``, the values of its secret headers (a name containing auth, key, token,
secret, password or cookie, a name that ``is_secret_name``, or one listed under
``secret_headers``), passwords and secret-named query parameters (``sig``, ``pwd``, ...)
in its ``base_url``, the master and audit keys, the passwords of
``KEEL_DATABASE_URL`` and ``KEEL_REDIS_URL``, and the ``KEEL_OTLP_HEADERS`` values. For
a header such as ``authorization: Bearer sk-...`` the secret is the token after the
scheme. ``redact`` replaces each occurrence with ``[REDACTED]``:

- a secret of 16 characters or more wherever it occurs, and also what providers echo of
  it when they shorten it: a head or a tail showing at least 8 of its characters beyond
  its public prefix (``sk-``, ``sk-proj-``, ``sk-ant-api03-``), as in ``sk-proj-AbCdEfGh...``
  or ``...Wx12Yz34``;
- a shorter one (8 to 15 characters) where it stands alone, not inside a longer word, so
  a password like ``postgres`` does not turn ``postgresql`` into nonsense;
- a URL password of any length where it sits between ``:`` and ``@``. Values shorter than
  8 characters are not searched for elsewhere: they would match ordinary words.

The names of secrets (``is_secret_name``), the authorization schemes before a token
(``AUTH_SCHEMES``) and the public type prefix of a key (``public_prefix``) are defined
here once and shared with the ``secrets`` guard scanner, which finds credentials nobody
configured by the same rules.

The scan is a handful of ``str.find`` calls (one or two per secret), so a text with no
secret in it costs little; with no secret configured, nothing at all. A leaf module: it
imports nothing from keel at run time, so every layer (providers, the gateway, logging
set-up) can use the same redactor.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

if TYPE_CHECKING:
    from keel.config import KeelConfig, ProviderConfig, ReceiverConfig, Settings

__all__ = ["AUTH_SCHEMES", "REDACTED", "SECRET_NAME_WORDS", "RedactingFilter", "SecretRedactor",
           "install_log_redaction", "is_identifier_name", "is_password_name", "is_secret_header",
           "is_secret_name", "public_prefix", "strip_scheme"]

REDACTED = "[REDACTED]"
MIN_SECRET = 8  # shorter values are only redacted as URL passwords
LONG_SECRET = 16  # from this length on: matched anywhere, fragments included
FRAGMENT = 8  # characters of a secret an echoed head or tail must show to be redacted
SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "password", "cookie")

# the type prefix of a key (sk-, sk-proj-, sk-ant-api03-): public, shared by every key of
# the kind, so a fragment must show secret characters beyond it
_PUBLIC_PREFIX = re.compile(r"(?:[A-Za-z0-9]{1,8}[-_])+")
# "Bearer TOKEN", "Basic CREDENTIALS", "Token TOKEN": the part after the scheme
AUTH_SCHEMES = ("bearer", "basic", "token", "bot", "apikey", "api-key", "key", "digest")
_SCHEME = re.compile(r"(?i:" + "|".join(AUTH_SCHEMES) + r")\s+(\S+)")

# The last word of a variable, parameter or header name whose value is a secret
# (OPENAI_API_KEY, dbPassword, x-api-key, client_secret, sig, session_id).
PASSWORD_WORDS = frozenset({"password", "passwd", "pwd", "pass", "passphrase", "passcode"})
SECRET_NAME_WORDS = PASSWORD_WORDS | {
    "key", "apikey", "token", "secret", "auth", "authorization", "credential", "credentials",
    "sig", "signature", "sessionid"}
# run together with a qualifier and still a secret: accesstoken, dbpassword, clientsecret
_SECRET_ENDINGS = ("password", "passwd", "passphrase", "secret", "token", "apikey",
                   "privatekey", "accesskey", "secretkey")
# a key or token named so is an identifier (a database key, a page cursor, a model's
# special token), not a credential
_NOT_SECRET = frozenset({
    "public", "pub", "primary", "foreign", "sort", "partition", "cache", "idempotency", "row",
    "unique", "composite", "lookup", "hash", "routing", "dedup", "group", "object", "index",
    "translation", "i18n", "label", "message", "shard", "bucket", "max", "min", "num",
    "total", "input", "output", "prompt", "completion", "stop", "eos", "bos", "pad", "unk",
    "mask", "sep", "cls", "special", "next", "page", "continuation", "cursor", "sync"})
_NAME_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def _name_words(name: str) -> list[str]:
    """``OPENAI_API_KEY_2`` -> openai, api, key; ``dbPassword`` -> db, password."""
    return [p.lower() for p in _NAME_PART.findall(name) if not p.isdigit()]


def is_secret_name(name: str) -> bool:
    """Whether a variable, parameter or header of this name holds a secret, by its last word
    (``API_KEY``, ``apiKey``, ``x-api-key``, ``DB_PASSWORD2``, ``accesstoken``, ``sig``,
    ``session_id``), not when it names an identifier (``public_key``, ``sort_key``,
    ``max_tokens``, ``next_page_token``, ``key_id``)."""
    words = _name_words(name)
    if not words:
        return False
    last, prev = words[-1], (words[-2] if len(words) > 1 else "")
    if last == "id":
        return prev == "session"
    if last in SECRET_NAME_WORDS:
        return not (last in ("key", "token") and prev in _NOT_SECRET)
    return last.endswith(_SECRET_ENDINGS)


def is_identifier_name(name: str) -> bool:
    """Whether the name is a key's or token's that is an identifier, not a credential
    (``public_key``, ``sort_key``, ``next_page_token``, ``eos_token``)."""
    words = _name_words(name)
    if len(words) < 2:
        return False
    last, prev = words[-1], words[-2]
    return (last in ("key", "token") and prev in _NOT_SECRET) or (last == "id"
                                                                  and prev != "session")


def is_password_name(name: str) -> bool:
    """Whether the name is a password's (``password``, ``DB_PASSWD``, ``pwd``, ...)."""
    words = _name_words(name)
    return bool(words) and words[-1] in PASSWORD_WORDS


def strip_scheme(value: str) -> str:
    """The token of ``Bearer TOKEN`` (any of ``AUTH_SCHEMES``); any other value as it is."""
    scheme = _SCHEME.fullmatch(value)
    return scheme.group(1) if scheme else value


def is_secret_header(name: str, marked: Iterable[str] = ()) -> bool:
    """Whether a header's (or query parameter's) value is a secret: by its name, or because
    it is ``marked``."""
    low = name.lower()
    return (any(w in low for w in SECRET_HEADER_WORDS) or is_secret_name(name)
            or low in {m.lower() for m in marked})


class _Collected:
    """Secrets gathered from settings and config, before they are compiled."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.url_passwords: set[str] = set()

    def add(self, value: str | None) -> None:
        if value and value.strip():
            # "Bearer TOKEN": the scheme is no secret
            self.values.add(strip_scheme(value.strip()))

    def header(self, name: str, value: str, marked: Iterable[str] = ()) -> None:
        if is_secret_header(name, marked):
            self.add(value)

    def url(self, url: str | None) -> None:
        """The password and any secret-named query parameters of a URL."""
        if not url:
            return
        try:
            parts = urlsplit(url)
            password = parts.password
        except ValueError:
            return
        if password:
            for form in {password, unquote(password)}:
                self.url_passwords.add(form)
                self.add(form)
        for name, value in parse_qsl(parts.query):
            self.header(name, value)


class SecretRedactor:
    """Finds configured secrets in text and JSON values and replaces them by ``[REDACTED]``.

    Falsy when it holds no secret; then every method returns its argument unchanged."""

    __slots__ = ("_contexts", "_json_seeds", "_long", "_short")

    def __init__(self, secrets: Iterable[str] = (), *, url_passwords: Iterable[str] = ()
                 ) -> None:
        values = sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True)
        # long secrets: (secret, head seed, tail seed); a fragment holds one of the seeds
        self._long: tuple[tuple[str, str, str], ...] = tuple(
            (s, s[:public_prefix(s) + FRAGMENT], s[-FRAGMENT:])
            for s in values if len(s) >= LONG_SECRET)
        self._short: tuple[str, ...] = tuple(s for s in values if len(s) < LONG_SECRET)
        self._contexts: tuple[str, ...] = tuple(sorted({f":{p}@" for p in url_passwords if p}))
        seeds = [seed for _, head, tail in self._long for seed in (head, tail)]
        seeds += [*self._short, *self._contexts]
        # the seeds as they appear inside JSON text (escaping is per character)
        self._json_seeds: tuple[str, ...] = tuple(
            {orjson.dumps(seed).decode()[1:-1] for seed in seeds})

    @classmethod
    def from_settings(cls, settings: Settings, config: KeelConfig) -> SecretRedactor:
        """Every secret this process holds (see the module's docstring)."""
        found = _Collected()
        for provider in config.providers:
            _provider_secrets(provider, found)
        for receiver in config.receivers:
            _receiver_secrets(receiver, found)
        found.add(settings.master_key)
        found.add(settings.audit_key)
        for url in (settings.database_url, settings.redis_url, settings.otlp_endpoint):
            found.url(url)
        for part in (settings.otlp_headers or "").split(","):
            _name, sep, value = part.partition("=")
            if sep:  # every value: collectors' credential headers have all sorts of names
                found.add(value)
                found.add(unquote(value))
        return cls(found.values, url_passwords=found.url_passwords)

    @classmethod
    def for_provider(cls, provider: ProviderConfig) -> SecretRedactor:
        """The credentials one provider adapter sends upstream."""
        found = _Collected()
        _provider_secrets(provider, found)
        return cls(found.values, url_passwords=found.url_passwords)

    def __bool__(self) -> bool:
        return bool(self._json_seeds)

    def redact(self, text: str) -> str:
        """``text`` with every configured secret (and echoed fragment) replaced."""
        if not self._json_seeds or not text:
            return text
        spans = self._spans(text)
        if not spans:
            return text
        spans.sort()
        out: list[str] = []
        pos = 0
        start, end = spans[0]
        for s, e in spans[1:]:
            if s <= end:  # overlapping or touching: one placeholder
                end = max(end, e)
                continue
            out += (text[pos:start], REDACTED)
            pos, start, end = end, s, e
        out += (text[pos:start], REDACTED, text[end:])
        return "".join(out)

    def redact_json(self, value: Any) -> Any:
        """``value`` itself when no string in it holds a secret, else a redacted copy
        (keys included)."""
        if not self._json_seeds or value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):
            return self.redact(value)
        try:
            dumped = orjson.dumps(value).decode()
        except (TypeError, orjson.JSONEncodeError):
            dumped = None  # not plain JSON (or too deep for orjson): look at every string
        if dumped is not None and not any(seed in dumped for seed in self._json_seeds):
            return value
        return self._walk(value)

    def redact_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {k: self.redact(v) for k, v in headers.items()}

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact(k) if isinstance(k, str) else k: self._walk(v)
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._walk(v) for v in value]
        return value

    def _spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        n = len(text)
        for secret, head, tail in self._long:
            i = text.find(head)
            while i >= 0:  # a head: extend it right for as long as it follows the secret
                end, k = i + len(head), len(head)
                while end < n and k < len(secret) and text[end] == secret[k]:
                    end, k = end + 1, k + 1
                spans.append((i, end))
                i = text.find(head, i + 1)
            j = text.find(tail)
            while j >= 0:  # a tail: extend it left
                start, k = j, len(secret) - len(tail)
                while start > 0 and k > 0 and text[start - 1] == secret[k - 1]:
                    start, k = start - 1, k - 1
                spans.append((start, j + len(tail)))
                j = text.find(tail, j + 1)
        for secret in self._short:
            i = text.find(secret)
            while i >= 0:
                end = i + len(secret)
                if not (i and text[i - 1].isalnum()) and not (end < n and text[end].isalnum()):
                    spans.append((i, end))
                i = text.find(secret, i + 1)
        for context in self._contexts:  # ":password@": only the password goes
            i = text.find(context)
            while i >= 0:
                spans.append((i + 1, i + len(context) - 1))
                i = text.find(context, i + 1)
        return spans


def public_prefix(secret: str) -> int:
    """The length of a key's type prefix (``sk-proj-``, ``ghp_``, ``xoxb-``), leaving at
    least ``FRAGMENT`` characters."""
    m = _PUBLIC_PREFIX.match(secret[:LONG_SECRET])
    return min(m.end() if m else 0, len(secret) - FRAGMENT)


def _provider_secrets(provider: ProviderConfig, found: _Collected) -> None:
    found.add(provider.api_key)
    for name, value in provider.headers.items():
        found.header(name, value, provider.secret_headers)
    found.url(provider.base_url)


def _receiver_secrets(receiver: ReceiverConfig, found: _Collected) -> None:
    """A notification receiver's signing secret, SMTP password, secret-named headers, and its
    webhook URL's path and query: a webhook URL is a credential (Slack's carries its token in
    the path)."""
    found.add(receiver.secret)
    found.add(receiver.password)
    for name, value in receiver.headers.items():
        found.header(name, value)
    found.url(receiver.url)
    if receiver.url:
        try:
            parts = urlsplit(receiver.url)
        except ValueError:
            return
        tail = parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
        if len(tail) >= LONG_SECRET:
            found.add(tail)


class RedactingFilter(logging.Filter):
    """Redacts configured secrets from a log record: its message (arguments merged in),
    its traceback and its stack. Installed on handlers, so it sees every record they
    emit, whichever logger the record came from."""

    def __init__(self, redactor: SecretRedactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor.redact
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as usual
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FORMATTER = logging.Formatter()


def install_log_redaction(redactor: SecretRedactor) -> int:
    """Put a ``RedactingFilter`` on every handler configured now (the root logger's and
    any other logger's, e.g. uvicorn's); returns how many handlers got one. Idempotent."""
    if not redactor:
        return 0
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [lg for lg in logging.Logger.manager.loggerDict.values()
                if isinstance(lg, logging.Logger)]
    installed = 0
    for lg in loggers:
        for handler in lg.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter(redactor))
                installed += 1
    return installed
