"""The HTTP/1.1 connection protocol of ``keel serve``: uvicorn's httptools protocol, bounded.

httptools parses fast but bounds nothing: it buffers a header of any size and any number of
them, and a client may take forever to send them. :class:`KeelHttpProtocol` adds what a
server facing untrusted clients needs, per connection:

- **Head size and count.** The request line and header fields may take at most
  ``max_header_bytes`` and ``max_headers`` fields; past either, the client gets a 431 and the
  connection is closed. Bytes are counted as they arrive, so an unfinished head is cut off
  once it passes the limit: a connection never holds more than the limit plus one read.
- **Head timeout.** A head must be complete within ``header_timeout_s`` of the connection
  opening (for its first request) or of the first read that leaves a later request's head
  unfinished; else the client gets a 408 (or, if it sent nothing at all, the connection is
  just closed). A head that arrives in one read, the usual case, arms no timer.
- **Idle keep-alive** is uvicorn's own timer (``timeout_keep_alive``), set by ``keel serve``.
- **Bodies** are read by the application under ``KEEL_BODY_TIMEOUT_S``
  (``keel.server.http.read_body``). When an answer is sent before its request body has
  all arrived (413, 408, an early error), the connection is closed after the answer instead
  of being kept alive: the rest of the body is never waited for.

A refused connection is closed gracefully: the answer is written, the sending side is shut
(the client reads the answer, then end of file), and whatever the client still sends is read
and dropped for at most ``LINGER_S`` before the socket is closed. Closing at once with unread
data would make the kernel reset the connection, and the client could lose the answer.

Refusals are short JSON error bodies in the OpenAI format (the Anthropic format for paths
under ``/v1/messages``), like every other keel error.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from keel.config import Settings
from keel.errors import InvalidRequest, KeelError, RequestTimeout
from keel.server.anthropic_api import error_status_and_body
from keel.types import new_trace_id

__all__ = ["LINGER_S", "HttpLimits", "KeelHttpProtocol", "protocol_class"]

log = logging.getLogger("keel.server.http")

LINGER_S = 2.0  # how long a refused connection is drained before it is closed
FIELD_OVERHEAD = 4  # ": " and CRLF around each header field


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(max_header_bytes=settings.max_header_bytes,
                   max_headers=settings.max_headers,
                   header_timeout_s=settings.header_timeout_s)


class _Refused(Exception):
    """Raised in a parser callback to stop parsing a head that broke a limit."""


class KeelHttpProtocol(HttpToolsProtocol):
    """uvicorn's ``HttpToolsProtocol`` with bounded request heads; see the module docstring.
    Build a class with :func:`protocol_class` to pass as ``uvicorn.Config(http=...)``."""

    limits: ClassVar[HttpLimits] = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False  # a request's head has begun and is not complete yet
        self._in_body = False  # a request's head is complete, its body not yet
        self._head_received = 0  # bytes received since the last request was read
        # Part of the current head came in the read that ended the previous request (so
        # uncounted): it is measured exactly when it completes.
        self._head_uncounted = False
        self._max_bytes = self.limits.max_header_bytes
        self._max_fields = self.limits.max_headers
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: KeelError | None = None  # set by a callback that stops the parser
        self._lingering = False  # answered and shut: input is read and dropped
        self.url = b""  # (uvicorn sets it when a request begins)

    # --- connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        self._unset_keepalive_if_required()
        if not self._in_body:
            self._head_received += len(data)
            if not self._in_head:
                self._head_uncounted = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(self._refusal)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        if self._in_head:  # this read left a head unfinished
            if self._head_received > self._max_bytes:
                self._refuse(self._too_large())
            else:
                self._arm_head_timer()

    # --- parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        # Bytes are counted per read (``data_received``); a head that ends in a large read, or
        # began in the read that ended the previous request, may still be over the limit, so
        # it is measured then. The usual head costs two comparisons.
        if len(self.headers) > self._max_fields:
            self._stop(InvalidRequest(
                f"the request has more than {self._max_fields} header fields; send fewer, or "
                "raise KEEL_MAX_HEADERS", status=431, code="too_many_headers"))
        if (self._head_received > self._max_bytes or self._head_uncounted) \
                and self._head_size() > self._max_bytes:
            self._stop(self._too_large())
        self._in_head = False
        self._in_body = True
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_body = False
        self._head_received = 0
        self._head_uncounted = True  # until the next read begins

    def on_response_complete(self) -> None:
        # (uvicorn leaves ``more_body`` set on a cycle answered before its body was read; with
        # requests queued behind it, that body was read before theirs began.)
        if (self.cycle is not None and self.cycle.more_body and not self.pipeline
                and not self.transport.is_closing()):
            # Answered before its body was all read: do not wait for the rest of it.
            self.server_state.total_requests += 1
            self._unset_keepalive_if_required()
            self._shut_and_drain()
            return
        super().on_response_complete()

    # --- limits -------------------------------------------------------------------------

    def _head_size(self) -> int:
        return len(self.url) + sum(len(n) + len(v) + FIELD_OVERHEAD for n, v in self.headers)

    def _too_large(self) -> KeelError:
        return InvalidRequest(
            f"the request head (request line and header fields) is over the "
            f"{self.limits.max_header_bytes}-byte limit; send fewer or smaller headers, or "
            "raise KEEL_MAX_HEADER_BYTES", status=431, code="headers_too_large")

    def _stop(self, refusal: KeelError) -> NoReturn:
        self._refusal = refusal
        raise _Refused(refusal.message)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout_s,
                                                    self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if not self._in_head:  # the connection's first request never began: just close
            self.transport.close()
            return
        self._refuse(RequestTimeout(
            f"the request head did not arrive within {self.limits.header_timeout_s:g} s; "
            "send the request line and headers at once, or raise KEEL_HEADER_TIMEOUT_S"))

    # --- answering and closing ----------------------------------------------------------

    def _refuse(self, err: KeelError) -> None:
        """Answer ``err`` (unless a response is being written) and close gracefully."""
        self._cancel_head_timer()
        log.info("refused a request from %s: %s", self.client, err.message)
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request broke a limit while an earlier answer is still being
            # written: let that answer finish, then close; read nothing more.
            self.cycle.keep_alive = False
            self._lingering = True
            self.flow.pause_reading()
            self.url, self.headers = b"", []
            return
        response = self._response(err)
        self.url, self.headers = b"", []  # what was read of the head: not kept while draining
        self.transport.write(response)
        self._shut_and_drain()

    def _response(self, err: KeelError) -> bytes:
        # The head was refused, so the client's X-Request-ID is not read: keel's own id.
        rid = "req_" + new_trace_id()
        anthropic = self.url.startswith(b"/v1/messages")
        if anthropic:
            status, body = error_status_and_body(err, rid)
        else:
            status, body = err.status, err.to_openai()
        content = orjson.dumps(body)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"x-request-id: %s\r\n" % rid.encode()]
        if anthropic:
            head += [b"request-id: %s\r\n" % rid.encode()]
        head += [b"content-type: application/json\r\n",
                 b"content-length: %d\r\n" % len(content), b"connection: close\r\n\r\n"]
        return b"".join(head) + content

    def _shut_and_drain(self) -> None:
        """Shut the sending side (the client reads the answer, then end of file), drop what
        the client still sends, and close after ``LINGER_S`` at most."""
        self._lingering = True
        self._cancel_head_timer()
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self._close)

    def _close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


def protocol_class(limits: HttpLimits) -> type[KeelHttpProtocol]:
    """A :class:`KeelHttpProtocol` class bound to ``limits``, for ``uvicorn.Config(http=)``."""
    return type("KeelHttpProtocol", (KeelHttpProtocol,), {"limits": limits})
