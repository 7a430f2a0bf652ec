"""The receivers: section: where notifications are delivered (webhooks and email).

Each receiver has a unique ``name`` (what alert rules route to) and a ``kind``:

- ``webhook``: ``url``, ``format`` (``slack``: a Slack incoming-webhook message;
  ``json``: keel's JSON document, signed with HMAC-SHA256 using ``secret``), extra
  ``headers``;
- ``email``: an SMTP ``host``/``port``, ``tls`` (``starttls``, ``ssl`` or ``none``),
  ``username``/``password``, ``from`` and a ``to`` list.

Secrets (``secret``, ``password``) are written as ``env:NAME`` in the file and resolved
by the loader, like a provider's ``api_key``. Each receiver also says how hard keel tries:
``timeout_s`` per attempt, at most ``attempts`` attempts, none after ``max_age_s``.

One model for both kinds (a key of the other kind is refused), so that every problem is
reported at the key path the file has.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, model_validator

from keel.config.base import _KeyProblem, _KeyProblems, _Strict

MIN_SECRET_LENGTH = 16
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "user-agent",
                              "keel-signature", "keel-timestamp", "keel-delivery"})
_WEBHOOK_KEYS = ("url", "format", "secret", "headers")
_EMAIL_KEYS = ("host", "port", "tls", "username", "password", "from_", "to")


class ReceiverConfig(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["webhook", "email"]
    timeout_s: float = Field(10.0, gt=0, le=300, description="Seconds one attempt may take.")
    attempts: int = Field(6, ge=1, le=100, description="Attempts before keel gives up.")
    max_age_s: float = Field(
        3600.0, gt=0, description="Seconds after the notification was handed over after "
        "which keel stops retrying it (a stale alert is worse than none).")
    # webhook
    url: str | None = None
    format: Literal["slack", "json"] | None = Field(None, description="Default: json.")
    secret: str | None = Field(
        None, description="HMAC-SHA256 key for the json format's signature; env:NAME.")
    headers: dict[str, str] = Field(default_factory=dict)
    # email
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535,
                             description="Default: 587 with starttls, 465 with ssl, 25 else.")
    tls: Literal["starttls", "ssl", "none"] | None = Field(None, description="Default: starttls.")
    username: str | None = None
    password: str | None = Field(None, description="env:NAME")
    from_: str | None = Field(None, alias="from")
    to: list[str] = Field(default_factory=list)

    @property
    def payload_format(self) -> Literal["slack", "json"]:
        return self.format or "json"

    @property
    def smtp_tls(self) -> Literal["starttls", "ssl", "none"]:
        return self.tls or "starttls"

    @property
    def smtp_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"starttls": 587, "ssl": 465, "none": 25}[self.smtp_tls]

    @model_validator(mode="after")
    def _kind_keys(self) -> ReceiverConfig:
        problems: list[_KeyProblem] = []
        other = _EMAIL_KEYS if self.kind == "webhook" else _WEBHOOK_KEYS
        for key in other:
            if key in self.model_fields_set:
                shown = "from" if key == "from_" else key
                this, that = (("a webhook", "email") if self.kind == "webhook"
                              else ("an email", "webhook"))
                problems.append(_KeyProblem(shown, f"not a key of {this} receiver",
                                            f"remove it, or make this a kind: {that} receiver"))
        if self.kind == "webhook":
            self._webhook(problems)
        else:
            self._email(problems)
        if problems:
            raise _KeyProblems(problems)
        return self

    def _webhook(self, problems: list[_KeyProblem]) -> None:
        if self.url is None:
            problems.append(_KeyProblem("url", "required key is missing",
                                        "give the receiver's URL, e.g. https://hooks.example.com/keel"))
        else:
            try:
                parts = urlsplit(self.url)
                host = parts.hostname
            except ValueError:
                parts, host = None, None
            if parts is None or parts.scheme not in ("http", "https") or not host:
                problems.append(_KeyProblem("url", f"not an http(s) URL: {self.url!r}",
                                            "give the full URL, e.g. https://hooks.example.com/keel"))
        if self.payload_format == "json":
            if not self.secret:
                problems.append(_KeyProblem(
                    "secret", "a json webhook is signed and needs a secret",
                    "set secret: env:NAME (a random string of 32+ characters)"))
            elif len(self.secret) < MIN_SECRET_LENGTH:
                problems.append(_KeyProblem(
                    "secret", f"the secret is shorter than {MIN_SECRET_LENGTH} characters",
                    "use a random string of 32+ characters"))
        elif self.secret:
            problems.append(_KeyProblem("secret", "Slack incoming webhooks do not check "
                                        "signatures", "remove secret: (the URL is the credential)"))
        for header in self.headers:
            if header.lower() in RESERVED_HEADERS:
                problems.append(_KeyProblem(f"headers.{header}", "keel sets this header itself",
                                            "remove it from headers:"))

    def _email(self, problems: list[_KeyProblem]) -> None:
        if not self.host:
            problems.append(_KeyProblem("host", "required key is missing",
                                        "give the SMTP server's host name"))
        if self.from_ is None:
            problems.append(_KeyProblem("from", "required key is missing",
                                        "give the sender's address, e.g. keel@example.com"))
        if not self.to:
            problems.append(_KeyProblem("to", "an email receiver needs at least one recipient",
                                        "list to: [ADDRESS, ...]"))
        where = [("from", self.from_)] if self.from_ is not None else []
        for i, address in [*where, *((f"to[{i}]", a) for i, a in enumerate(self.to))]:
            if not _one_address(address):
                problems.append(_KeyProblem(i, f"not one email address: {address!r}",
                                            "write one address like alerts@example.com"))
        if self.password and not self.username:
            problems.append(_KeyProblem("username", "a password without a username",
                                        "set username: too"))


def _one_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain) and not any(c in address for c in "\r\n,;<> ")


def receiver_problems(receivers: list[ReceiverConfig]) -> list[_KeyProblem]:
    """Receivers declared twice under one name."""
    problems: list[_KeyProblem] = []
    seen: set[str] = set()
    for i, r in enumerate(receivers):
        if r.name in seen:
            problems.append(_KeyProblem(f"receivers[{i}].name",
                                        f"receiver '{r.name}' is declared twice",
                                        "give each receiver a unique name"))
        seen.add(r.name)
    return problems


def check_receivers(receivers: list[ReceiverConfig]) -> None:
    """Raise every ``receiver_problems`` at once (for the root config's validator)."""
    problems = receiver_problems(receivers)
    if problems:
        raise _KeyProblems(problems)
