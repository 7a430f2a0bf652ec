"""The receivers: section: both kinds, their defaults and every problem at its key path."""

from __future__ import annotations

import pytest

from keel.config import ReceiverConfig, parse_config
from keel.errors import ConfigError

SECRET = "s3cr3t-0123456789abcdef"


def problems(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "keel.yaml")
    return str(info.value).splitlines()


def test_webhook_and_email_receivers_load_with_their_defaults(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2hunter2")
    config = parse_config({"receivers": [
        {"name": "ops", "kind": "webhook", "url": "https://hooks.example.com/k",
         "secret": "env:HOOK_SECRET", "headers": {"X-Team": "ops"}},
        {"name": "slack", "kind": "webhook", "url": "https://hooks.slack.com/services/T/B/X",
         "format": "slack"},
        {"name": "mail", "kind": "email", "host": "smtp.example.com", "username": "keel",
         "password": "env:SMTP_PASSWORD", "from": "keel@example.com", "to": ["a@example.com"]},
    ]}, "keel.yaml")
    hook, slack, mail = config.receivers
    assert (hook.payload_format, hook.secret, hook.headers) == ("json", SECRET, {"X-Team": "ops"})
    assert slack.payload_format == "slack" and slack.secret is None
    assert (mail.smtp_tls, mail.smtp_port, mail.password) == ("starttls", 587, "hunter2hunter2")
    assert mail.from_ == "keel@example.com" and mail.to == ["a@example.com"]
    assert (hook.attempts, hook.timeout_s, hook.max_age_s) == (6, 10.0, 3600.0)


def test_ssl_and_plain_smtp_have_their_own_default_ports() -> None:
    base = {"name": "m", "kind": "email", "host": "h", "from": "k@x.io", "to": ["a@x.io"]}
    assert ReceiverConfig.model_validate({**base, "tls": "ssl"}).smtp_port == 465
    assert ReceiverConfig.model_validate({**base, "tls": "none"}).smtp_port == 25
    assert ReceiverConfig.model_validate({**base, "tls": "none", "port": 2525}).smtp_port == 2525


def test_a_json_webhook_without_a_long_secret_is_refused() -> None:
    lines = problems({"receivers": [
        {"name": "a", "kind": "webhook", "url": "https://h.example.com"},
        {"name": "b", "kind": "webhook", "url": "https://h.example.com", "secret": "short"},
    ]})
    assert lines == [
        "keel.yaml: receivers[0].secret: a json webhook is signed and needs a secret; "
        "set secret: env:NAME (a random string of 32+ characters)",
        "keel.yaml: receivers[1].secret: the secret is shorter than 16 characters; "
        "use a random string of 32+ characters"]


def test_bad_webhook_keys_are_named_with_the_fix() -> None:
    lines = problems({"receivers": [
        {"name": "a", "kind": "webhook", "url": "ftp://h.example.com", "format": "slack",
         "secret": SECRET, "headers": {"Content-Type": "text/plain"}, "host": "smtp"},
    ]})
    assert [line.split(":")[1].strip() for line in lines] == [
        "receivers[0].host", "receivers[0].url", "receivers[0].secret",
        "receivers[0].headers.Content-Type"]
    assert "Slack incoming webhooks do not check signatures" in lines[2]


def test_bad_email_keys_are_named_with_the_fix() -> None:
    lines = problems({"receivers": [
        {"name": "m", "kind": "email", "from": "nobody", "to": ["a@x.io", "b@x.io, c@x.io"],
         "password": "pw-pw-pw-pw", "url": "https://x.io"},
    ]})
    assert [line.split(":")[1].strip() for line in lines] == [
        "receivers[0].url", "receivers[0].host", "receivers[0].from", "receivers[0].to[1]",
        "receivers[0].username"]


def test_a_receiver_name_used_twice_is_refused() -> None:
    hook = {"name": "ops", "kind": "webhook", "url": "https://h.example.com", "format": "slack"}
    assert problems({"receivers": [hook, hook]}) == [
        "keel.yaml: receivers[1].name: receiver 'ops' is declared twice; "
        "give each receiver a unique name"]


def test_an_unknown_kind_or_key_is_refused() -> None:
    lines = problems({"receivers": [{"name": "p", "kind": "pager"},
                                    {"name": "m", "kind": "webhook", "urll": "https://x.io"}]})
    assert lines[0].startswith("keel.yaml: receivers[0].kind: ")
    assert lines[1].startswith("keel.yaml: receivers[1].urll: ")
    assert "url" in lines[1]
