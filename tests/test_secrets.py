"""SecretRedactor: which configured values are secrets, what of them is found in text and
JSON (whole, echoed heads and tails, URL passwords), and the log filter built on it."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from keel.config import Settings, parse_config
from keel.errors import ConfigError
from keel.secrets import (
    REDACTED,
    RedactingFilter,
    SecretRedactor,
    install_log_redaction,
    is_secret_name,
)

KEY = "sk-proj-Zq7TfW2vLk9XpR4mB8nHcY3jD6sQ1aUe"  # public prefix "sk-proj-"


def redactor(*secrets: str, url_passwords: tuple[str, ...] = ()) -> SecretRedactor:
    return SecretRedactor(secrets, url_passwords=url_passwords)


def test_no_secret_configured_changes_nothing_and_returns_the_same_objects() -> None:
    r = SecretRedactor()
    assert not r
    text, body = f"key {KEY}", {"messages": [{"content": KEY}]}
    assert r.redact(text) is text
    assert r.redact_json(body) is body


def test_a_long_secret_is_found_anywhere_even_inside_other_characters() -> None:
    r = redactor(KEY)
    assert r.redact(f"Bearer {KEY}") == f"Bearer {REDACTED}"
    assert r.redact(f"x{KEY}y and %22{KEY}%22") == f"x{REDACTED}y and %22{REDACTED}%22"
    assert r.redact("nothing here") == "nothing here"


def test_echoed_heads_and_tails_of_eight_secret_characters_are_redacted() -> None:
    r = redactor(KEY)
    # a head: the public prefix plus 8 characters of the secret (or more)
    assert r.redact(f"provided: {KEY[:16]}****{KEY[-8:]}.") == \
        f"provided: {REDACTED}****{REDACTED}."
    assert r.redact(f"provided: {KEY[:30]}...") == f"provided: {REDACTED}..."
    # fewer than 8 secret characters: not a fragment worth hiding (providers show the
    # last 4 on purpose), and never the public prefix alone
    assert r.redact(f"provided: {KEY[:15]}****{KEY[-7:]}") == \
        f"provided: {KEY[:15]}****{KEY[-7:]}"
    assert r.redact("keys look like sk-proj-...") == "keys look like sk-proj-..."


def test_the_token_of_a_bearer_header_is_a_secret_of_its_own() -> None:
    cfg = parse_config({"providers": [{"name": "p", "kind": "openai", "base_url": "http://u/v1",
                                       "headers": {"authorization": f"Bearer {KEY}"}}]}, "t.yaml")
    r = SecretRedactor.from_settings(Settings(), cfg)
    assert r.redact(f"got {KEY}") == f"got {REDACTED}"


def test_a_short_secret_is_redacted_only_where_it_stands_alone() -> None:
    r = redactor("postgres")
    assert r.redact("password postgres, engine postgresql") == \
        f"password {REDACTED}, engine postgresql"


def test_url_passwords_of_any_length_are_redacted_between_colon_and_at() -> None:
    s = Settings(database_url="postgresql://app:pw1@db:5432/keel",
                 redis_url="redis://:p%40ss-Word-9x@cache:6379/0")
    r = SecretRedactor.from_settings(s, parse_config({}, "t.yaml"))
    assert r.redact("connecting to postgresql://app:pw1@db:5432/keel") == \
        f"connecting to postgresql://app:{REDACTED}@db:5432/keel"
    assert r.redact("pw1 is too short to look for elsewhere") == \
        "pw1 is too short to look for elsewhere"
    # the encoded form (as in the URL) and the decoded one (as a driver may print it)
    assert r.redact("redis://:p%40ss-Word-9x@cache and p@ss-Word-9x") == \
        f"redis://:{REDACTED}@cache and {REDACTED}"


def test_every_configured_secret_is_collected_and_nothing_else() -> None:
    cfg = parse_config({"providers": [
        {"name": "oa", "kind": "openai", "api_key": "sk-openai-1111111111111111",
         "base_url": "https://user:hunter22hunter@up.example/v1?key=query-secret-2222",
         "headers": {"x-org-token": "org-token-33333333", "x-tenant": "tenant-44444444",
                     "x-region": "eu-west-1-region"}, "secret_headers": ["X-Tenant"]},
        {"name": "an", "kind": "anthropic", "api_key": "sk-ant-api03-5555555555555555"},
    ]}, "t.yaml")
    s = Settings(master_key="sk-master-66666666", audit_key="audit-key-77777777",
                 database_url="postgresql://keel:db-pass-88888888@db/keel",
                 redis_url="redis://:redis-pass-99999999@cache/0",
                 otlp_headers="x-honeycomb-team=hc-team-00000000,"
                              "authorization=Bearer%20otlp-token-abcdefgh")
    r = SecretRedactor.from_settings(s, cfg)
    secrets = ["sk-openai-1111111111111111", "hunter22hunter", "query-secret-2222",
               "org-token-33333333", "tenant-44444444", "sk-ant-api03-5555555555555555",
               "sk-master-66666666", "audit-key-77777777", "db-pass-88888888",
               "redis-pass-99999999", "hc-team-00000000", "otlp-token-abcdefgh"]
    for secret in secrets:
        assert r.redact(f"[{secret}]") == f"[{REDACTED}]", secret
    assert r.redact("eu-west-1-region") == "eu-west-1-region"  # not a secret header
    one = SecretRedactor.for_provider(cfg.providers[1])
    assert one.redact("sk-ant-api03-5555555555555555 sk-master-66666666") == \
        f"{REDACTED} sk-master-66666666"


def test_a_secret_header_that_is_not_a_header_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"providers": [{"name": "oa", "kind": "openai", "base_url": "http://u",
                                     "headers": {"x-tenant": "t"},
                                     "secret_headers": ["x-tennant"]}]}, "keel.yaml")
    assert err.value.message == ("keel.yaml: providers[0].secret_headers[0]: 'x-tennant' is "
                                 "not one of the headers; list names that appear under headers:")


def test_json_values_are_copied_only_when_a_secret_is_in_them() -> None:
    r = redactor(KEY)
    clean: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "n": 1}
    assert r.redact_json(clean) is clean
    dirty: dict[str, Any] = {"messages": [{"role": "user", "content": f"key={KEY}"}],
                             KEY: [1, (KEY,)]}
    assert r.redact_json(dirty) == {"messages": [{"role": "user", "content": f"key={REDACTED}"}],
                                    REDACTED: [1, [REDACTED]]}
    assert dirty["messages"][0]["content"] == f"key={KEY}"  # the original is left alone


def test_json_too_deep_for_the_fast_check_is_still_redacted() -> None:
    r = redactor(KEY)
    deep: Any = KEY
    for _ in range(300):  # past orjson's 254 levels
        deep = [deep]
    out = r.redact_json(deep)
    for _ in range(300):
        out = out[0]
    assert out == REDACTED


def test_neighbouring_secrets_become_one_placeholder() -> None:
    other = "tok-Vq2Wd7Yh4Kp9Lm3Nx8Tb"
    assert redactor(KEY, other).redact(f"<{KEY}{other}>") == f"<{REDACTED}>"


def _record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("keel.test", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_the_log_filter_redacts_message_arguments_and_tracebacks() -> None:
    f = RedactingFilter(redactor(KEY))
    rec = _record("upstream said %s (%d)", f"bad key {KEY}", 401)
    assert f.filter(rec)
    assert rec.getMessage() == f"upstream said bad key {REDACTED} (401)"
    try:
        raise RuntimeError(f"connect failed with {KEY}")
    except RuntimeError as exc:
        rec = _record("failed", exc=exc)
    assert f.filter(rec)
    text = logging.Formatter().format(rec)
    assert KEY not in text and f"RuntimeError: connect failed with {REDACTED}" in text
    untouched = _record("plain %s", "text")
    assert f.filter(untouched) and untouched.args == ("text",)


def _all_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger))]
    return [h for lg in loggers for h in lg.handlers]


def test_install_puts_one_filter_on_every_handler() -> None:
    named = logging.getLogger("keel.test.install")
    handler = logging.StreamHandler()
    named.addHandler(handler)
    before = {h: list(h.filters) for h in _all_handlers()}
    try:
        assert install_log_redaction(SecretRedactor()) == 0
        assert install_log_redaction(redactor(KEY)) == len(before)
        assert install_log_redaction(redactor(KEY)) == 0  # already there
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    finally:
        named.removeHandler(handler)
        for h, filters in before.items():
            h.filters[:] = filters


@pytest.mark.parametrize(("name", "secret"), [
    ("OPENAI_API_KEY", True), ("apiKey", True), ("x-api-key", True), ("DB_PASSWORD2", True),
    ("dbPassword", True), ("passwd", True), ("pwd", True), ("client_secret", True),
    ("accesstoken", True), ("Authorization", True), ("sig", True), ("session_id", True),
    ("credentials", True), ("AUTH_TOKEN_2", True),
    ("public_key", False), ("sort_key", False), ("max_tokens", False), ("key_id", False),
    ("next_page_token", False), ("eos_token", False), ("monkey", False), ("author", False),
    ("bypass", False), ("user_id", False), ("", False),
])
def test_secret_names_are_told_by_their_last_word(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_query_parameters_named_like_secrets_are_redacted_from_base_urls() -> None:
    sig, pwd = "c2lnbmF0dXJlLXZhbHVlLTEyMzQ1Njc4OTA", "pwd-value-8r5t2k"
    cfg = parse_config({"providers": [
        {"name": "blob", "kind": "openai",
         "base_url": f"https://acct.example.net/v1?sv=2024-01-01&sig={sig}&pwd={pwd}&sp=r"},
    ]}, "t.yaml")
    r = SecretRedactor.for_provider(cfg.providers[0])
    assert r.redact(f"upstream said: bad sig {sig}, pwd {pwd}") == \
        f"upstream said: bad sig {REDACTED}, pwd {REDACTED}"
    assert r.redact("sp=r sv=2024-01-01") == "sp=r sv=2024-01-01"  # not secrets


def test_notification_receivers_credentials_are_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "whsec-9f8e7d6c5b4a39281706")
    monkeypatch.setenv("SMTP_PASSWORD", "mail-pass-7q2w9e4r")
    slack = "https://hooks.slack.com/services/T0AAA1111/B0BBB2222/abcdEFGHijklMNOPqrst"
    cfg = parse_config({"receivers": [
        {"name": "chat", "kind": "webhook", "format": "slack", "url": slack},
        {"name": "pager", "kind": "webhook", "url": "https://hooks.example.com/keel",
         "secret": "env:HOOK_SECRET", "headers": {"Authorization": "Bearer pager-token-55aa66bb"}},
        {"name": "mail", "kind": "email", "host": "smtp.example.com", "username": "keel",
         "password": "env:SMTP_PASSWORD", "from": "keel@example.com",
         "to": ["oncall@example.com"]},
    ]}, "t.yaml")
    r = SecretRedactor.from_settings(Settings(), cfg)
    text = ("posting to " + slack + " with whsec-9f8e7d6c5b4a39281706 and "
            "pager-token-55aa66bb; login mail-pass-7q2w9e4r")
    out = r.redact(text)
    for secret in ("T0AAA1111/B0BBB2222/abcdEFGHijklMNOPqrst", "whsec-9f8e7d6c5b4a39281706",
                   "pager-token-55aa66bb", "mail-pass-7q2w9e4r"):
        assert secret not in out
    assert "hooks.slack.com" in out  # the host is no secret
