"""Real receivers on loopback for the notify tests: an HTTP server (aiohttp) that records
each request and answers as told, and an SMTP server (asyncio streams) that speaks enough
SMTP for smtplib: EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiohttp import web

HANG = -1  # a planned answer: never answer (until the server stops)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class HttpReceiver:
    """``plan(503, 503)``: the next requests get these statuses (``HANG``: no answer),
    then 200. ``requests`` holds every request as received."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._plan: list[int] = []
        self._headers: dict[str, str] = {}
        self._stop = asyncio.Event()
        self.arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def plan(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        self._plan = list(statuses)
        self._headers = headers or {}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Received(request.path_qs, dict(request.headers),
                                      await request.read()))
        async with self.arrived:
            self.arrived.notify_all()
        status = self._plan.pop(0) if self._plan else 200
        if status == HANG:
            await self._stop.wait()
            status = 503
        if 300 <= status < 400:
            return web.Response(status=status, headers={"Location": "/elsewhere"})
        return web.Response(status=status, text="ok" if status < 300 else f"no: {status}",
                            headers=self._headers if status >= 300 else None)

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(10), self.arrived:
            await self.arrived.wait_for(lambda: len(self.requests) >= count)

    async def start(self) -> HttpReceiver:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        self._stop.set()
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    data: bytes

    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class SmtpReceiver:
    """An SMTP server on 127.0.0.1. ``fail_mail``: replies (e.g. 451) to the next MAIL
    commands; ``refuse_rcpt``: a reply (e.g. 550) to every RCPT; ``auth``: the (user,
    password) AUTH PLAIN accepts, advertised when set. No STARTTLS is offered."""

    auth: tuple[str, str] | None = None
    fail_mail: list[int] = field(default_factory=list)
    refuse_rcpt: int | None = None
    mails: list[Mail] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> SmtpReceiver:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                       ) -> None:
        def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        sender, recipients = "", list[str]()
        reply("220 127.0.0.1 test SMTP ready")
        try:
            while True:
                await writer.drain()
                raw = await reader.readline()
                if not raw:
                    return
                line = raw.decode().rstrip("\r\n")
                verb, _, arg = line.partition(" ")
                verb = verb.upper()
                self.commands.append(verb)
                if verb == "EHLO":
                    ext = ["8BITMIME", "SIZE 10000000"] + (["AUTH PLAIN"] if self.auth else [])
                    reply("250-127.0.0.1 hello")
                    for i, e in enumerate(ext):
                        reply(("250 " if i == len(ext) - 1 else "250-") + e)
                elif verb == "HELO":
                    reply("250 127.0.0.1")
                elif verb == "AUTH" and self.auth and arg.upper().startswith("PLAIN "):
                    _, user, password = base64.b64decode(arg[6:]).decode().split("\0")
                    self.logins.append((user, password))
                    reply("235 ok" if (user, password) == self.auth else "535 bad credentials")
                elif verb == "MAIL":
                    if self.fail_mail:
                        code = self.fail_mail.pop(0)
                        reply(f"{code} try later")
                        continue
                    sender = arg.partition(":")[2].strip().lstrip("<").split(">")[0]
                    recipients = []
                    reply("250 ok")
                elif verb == "RCPT":
                    if self.refuse_rcpt:
                        reply(f"{self.refuse_rcpt} no such user")
                        continue
                    recipients.append(arg.partition(":")[2].strip().strip("<>"))
                    reply("250 ok")
                elif verb == "DATA":
                    reply("354 end with .")
                    await writer.drain()
                    lines = []
                    while True:
                        chunk = await reader.readline()
                        if chunk in (b".\r\n", b""):
                            break
                        lines.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                    self.mails.append(Mail(sender, recipients, b"".join(lines)))
                    reply("250 queued")
                elif verb in ("RSET", "NOOP"):
                    reply("250 ok")
                elif verb == "QUIT":
                    reply("221 bye")
                    await writer.drain()
                    return
                else:
                    reply("502 not implemented")
        finally:
            writer.close()
