"""Email delivery over SMTP with the standard library's ``smtplib``, run in a worker
thread so the event loop never waits on the mail server.

``tls``: ``starttls`` (the default: upgrade the connection, certificate verified, and
fail if the server does not offer it), ``ssl`` (TLS from the first byte, port 465) or
``none`` (plain SMTP, for a relay on loopback or a trusted network). An SMTP reply in
the 4xx range, a timeout or a dropped connection is retried; a 5xx reply (a recipient,
sender or message refused, bad credentials), a missing STARTTLS and a certificate that
does not verify are not. ``timeout_s`` bounds each socket operation here as well as the
whole attempt in the dispatcher, so a thread left behind by a timed-out attempt ends soon.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from email.message import EmailMessage

from keel.config import ReceiverConfig
from keel.notify.mail import build_message
from keel.notify.model import Notification
from keel.notify.transport import DeliveryFailed

log = logging.getLogger(__name__)


class EmailSender:
    def __init__(self, config: ReceiverConfig, *, tls_context: ssl.SSLContext | None = None
                 ) -> None:
        if config.kind != "email" or not config.host or config.from_ is None:
            raise ValueError(f"receiver {config.name!r} is not an email receiver")
        self.name = config.name
        self.config = config
        self.host = config.host
        self.sender = config.from_
        self._tls = tls_context

    def message(self, n: Notification) -> EmailMessage:
        return build_message(n, self.sender, self.config.to)

    async def send(self, notification: Notification) -> None:
        msg = self.message(notification)
        await asyncio.to_thread(self._deliver, msg)

    def _context(self) -> ssl.SSLContext:
        return self._tls or ssl.create_default_context()

    def _deliver(self, msg: EmailMessage) -> None:
        c = self.config
        where = f"{self.host}:{c.smtp_port}"
        try:
            smtp: smtplib.SMTP
            if c.smtp_tls == "ssl":
                smtp = smtplib.SMTP_SSL(self.host, c.smtp_port, timeout=c.timeout_s,
                                        context=self._context())
            else:
                smtp = smtplib.SMTP(self.host, c.smtp_port, timeout=c.timeout_s)
            with smtp:
                smtp.ehlo()
                if c.smtp_tls == "starttls":
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if c.username:
                    smtp.login(c.username, c.password or "")
                refused = smtp.send_message(msg, from_addr=self.sender, to_addrs=c.to)
            if refused:  # some recipients took it: sending again would repeat it to them
                log.warning("receiver %s: %s refused %s", self.name, where, sorted(refused))
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryFailed(f"{where}: {exc} (set tls: to what the server offers)",
                                 retry=False) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryFailed(f"{where} refused every recipient "
                                 f"({', '.join(sorted(exc.recipients))}): SMTP {codes[0]}",
                                 retry=all(400 <= code < 500 for code in codes)) from None
        except smtplib.SMTPResponseException as exc:
            said = exc.smtp_error.decode("utf-8", "replace") if isinstance(
                exc.smtp_error, bytes) else str(exc.smtp_error)
            raise DeliveryFailed(f"{where} answered SMTP {exc.smtp_code}: {' '.join(said.split())}",
                                 retry=400 <= exc.smtp_code < 500) from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryFailed(f"{where}: the certificate does not verify "
                                 f"({exc.verify_message})", retry=False) from None
        except (smtplib.SMTPException, OSError) as exc:  # disconnects, timeouts, refusals
            raise DeliveryFailed(f"could not deliver to {where}: {type(exc).__name__}"
                                 + (f": {exc}" if str(exc) else ""), retry=True) from None

    async def close(self) -> None:
        return None
