"""Email delivery through the Dispatcher to a real SMTP server on loopback (smtplib
completes a whole SMTP conversation): the message, its recipients, login, what is
retried and what is not."""

from __future__ import annotations

import socket
from typing import Any

from keel.backoff import Backoff
from keel.config import ReceiverConfig
from keel.notify import Dispatcher
from tests.notify.builders import notification
from tests.notify.receivers import SmtpReceiver

FAST = Backoff(base=0.01, jitter="none")


def mailbox(port: int, **extra: Any) -> ReceiverConfig:
    return ReceiverConfig.model_validate({
        "name": "oncall", "kind": "email", "host": "127.0.0.1", "port": port, "tls": "none",
        "from": "keel@example.com", "to": ["oncall@example.com", "lead@example.com"],
        "timeout_s": 10, **extra})


async def test_the_email_arrives_with_subject_both_bodies_and_recipients(
        smtp: SmtpReceiver) -> None:
    n = notification()
    async with Dispatcher([mailbox(smtp.port)]) as d:
        assert d.submit(n) == 1
        await d.drain()
        state = d.status()["oncall"]
    assert (state["kind"], state["sent"], state["failed"]) == ("email", 1, 0)
    (mail,) = smtp.mails
    assert mail.sender == "keel@example.com"
    assert mail.recipients == ["oncall@example.com", "lead@example.com"]
    msg = mail.message()
    assert msg["Subject"] == ("[keel] [FIRING:1] critical: cost_per_request_up "
                              "(feature=summarize): cost per request rose 42% against last week")
    assert msg["To"] == "oncall@example.com, lead@example.com"
    assert msg["From"] == "keel@example.com"
    assert msg.get_content_type() == "multipart/alternative"
    plain, page = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None and page is not None
    assert "cost per request rose 42% against last week" in plain.get_content()
    assert "https://keel.example.com/costs?feature=summarize" in plain.get_content()
    assert "<h3" in page.get_content() and "cost_per_request_up" in page.get_content()
    assert "STARTTLS" not in smtp.commands  # tls: none on loopback
    assert smtp.commands[0] == "EHLO" and smtp.commands[-1] == "QUIT"


async def test_it_logs_in_with_the_configured_credentials() -> None:
    server = await SmtpReceiver(auth=("keel", "s3cret-pass")).start()
    try:
        config = mailbox(server.port, username="keel", password="s3cret-pass")
        async with Dispatcher([config]) as d:
            d.submit(notification())
            await d.drain()
            assert d.status()["oncall"]["sent"] == 1
        assert server.logins == [("keel", "s3cret-pass")] and len(server.mails) == 1
    finally:
        await server.stop()


async def test_wrong_credentials_are_not_retried() -> None:
    server = await SmtpReceiver(auth=("keel", "s3cret-pass")).start()
    try:
        config = mailbox(server.port, username="keel", password="wrong")
        async with Dispatcher([config], backoff=FAST) as d:
            d.submit(notification())
            await d.drain()
            state = d.status()["oncall"]
        assert len(server.logins) == 1 and server.mails == []
        assert state["failed"] == 1
        assert state["last_error"] == f"127.0.0.1:{server.port} answered SMTP 535: bad credentials"
    finally:
        await server.stop()


async def test_starttls_that_the_server_does_not_offer_fails_without_retrying(
        smtp: SmtpReceiver) -> None:
    async with Dispatcher([mailbox(smtp.port, tls="starttls")], backoff=FAST) as d:
        d.submit(notification())
        await d.drain()
        state = d.status()["oncall"]
    assert smtp.mails == [] and smtp.commands.count("EHLO") == 1
    assert state["failed"] == 1 and state["retries"] == 0
    assert "STARTTLS extension not supported by server" in state["last_error"]
    assert "set tls:" in state["last_error"]


async def test_a_temporary_smtp_refusal_is_retried(smtp: SmtpReceiver) -> None:
    smtp.fail_mail = [451, 421]
    async with Dispatcher([mailbox(smtp.port)], backoff=FAST) as d:
        d.submit(notification())
        await d.drain()
        state = d.status()["oncall"]
    assert len(smtp.mails) == 1
    assert (state["sent"], state["retries"]) == (1, 2)
    assert state["last_error"] == f"127.0.0.1:{smtp.port} answered SMTP 421: try later"


async def test_refused_recipients_are_not_retried(smtp: SmtpReceiver) -> None:
    smtp.refuse_rcpt = 550
    async with Dispatcher([mailbox(smtp.port)], backoff=FAST) as d:
        d.submit(notification())
        await d.drain()
        state = d.status()["oncall"]
    assert smtp.mails == [] and smtp.commands.count("MAIL") == 1
    assert state["failed"] == 1 and state["retries"] == 0
    assert state["last_error"] == (f"127.0.0.1:{smtp.port} refused every recipient "
                                   "(lead@example.com, oncall@example.com): SMTP 550")


async def test_a_mail_server_that_is_down_is_retried_then_given_up() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with Dispatcher([mailbox(port, attempts=3)], backoff=FAST) as d:
        d.submit(notification())
        await d.drain()
        state = d.status()["oncall"]
    assert (state["failed"], state["retries"]) == (1, 2)
    assert state["last_error"].startswith(f"could not deliver to 127.0.0.1:{port}: "
                                          "ConnectionRefusedError")
