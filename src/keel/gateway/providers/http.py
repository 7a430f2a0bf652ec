"""One pooled HTTP client per provider, and the mapping of upstream failures to errors.

Adapters call ``post_json`` and ``stream_sse``; both raise ``UpstreamError`` subclasses
with a message that names the provider and says what came back. What came back is passed
through the adapter's ``redact`` first (upstreams echo the key they were sent), and is
redacted before it is cut short, so a cut never leaves a piece of a secret behind.
Of the upstream's response headers only a valid ``Retry-After`` is kept.

The provider's own error ``type``, ``code`` and ``param`` are kept as a ``ProviderFault``
(``upstream_fault``), so clients see them; Google's ``status`` strings (``INVALID_ARGUMENT``)
become the ``code``, with an OpenAI ``type`` mapped from them. Each is kept only when it is
a short printable string, redacted like the message.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson
from yarl import URL

from keel.errors import (
    ProviderFault,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from keel.types import JSON

_SNIPPET = 300
_SECRET_ROOM = 4096  # redaction looks this far past a cut, for a secret that straddles it
_DELAY = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,3})?")

_LABEL_CHARS = 128
MAX_SSE_LINE = 2 ** 17  # bytes of one line of a stream (aiohttp's own line limit)
_KEPT_4XX = frozenset({400, 404, 409, 413, 415, 422})
_GOOGLE_STATUS = re.compile(r"[A-Z][A-Z_]{1,63}")
Redact = Callable[[str], str]

# Google API error ``status`` -> OpenAI error ``type`` (server-side ones keep keel's type)
GOOGLE_TYPES = {
    "INVALID_ARGUMENT": "invalid_request_error", "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error", "NOT_FOUND": "not_found_error",
    "ALREADY_EXISTS": "invalid_request_error", "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_error", "RESOURCE_EXHAUSTED": "rate_limit_error",
}


def _same(text: str) -> str:
    return text


def excerpt(text: str, redact: Redact = _same, limit: int = _SNIPPET) -> str:
    """The start of ``text``, secrets redacted before it is cut."""
    return redact(text[:limit + _SECRET_ROOM])[:limit]


def upstream_message(raw: bytes, redact: Redact = _same) -> str:
    """Pull a human message out of an upstream error body of any common shape."""
    return upstream_fault(raw, redact)[0]


def _label(value: Any, redact: Redact) -> str | None:
    """A provider's error type, code or param worth passing on: a short printable string."""
    if not isinstance(value, str):
        return None  # e.g. vLLM's and Google's numeric ``code``: the HTTP status again
    value = value.strip()
    if not value or len(value) > _LABEL_CHARS or not (value.isascii() and value.isprintable()):
        return None
    return redact(value)


def fault_of(err: Any, redact: Redact = _same) -> ProviderFault | None:
    """The ``ProviderFault`` of an upstream's ``error`` object (OpenAI, Anthropic or Google
    shape), or None when it names nothing."""
    if not isinstance(err, dict):
        return None
    google = err.get("status")
    if isinstance(google, str) and _GOOGLE_STATUS.fullmatch(google) and "type" not in err:
        # {"code": 400, "message": ..., "status": "INVALID_ARGUMENT"}
        return ProviderFault(type=GOOGLE_TYPES.get(google), code=google)
    fault = ProviderFault(type=_label(err.get("type"), redact),
                          code=_label(err.get("code"), redact),
                          param=_label(err.get("param"), redact))
    return fault if fault.type or fault.code or fault.param else None


def upstream_fault(raw: bytes, redact: Redact = _same) -> tuple[str, ProviderFault | None]:
    """The human message of an upstream error body of any common shape, and the provider's
    own type, code and param when it gives them."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw[:_SNIPPET * 4 + _SECRET_ROOM].decode("utf-8", "replace").strip()
        return excerpt(text, redact) or "(empty body)", None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # gemini sometimes wraps the error in a list
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail")
            if isinstance(msg, str) and msg:
                return excerpt(msg, redact), fault_of(err, redact)
        elif isinstance(err, str):
            return excerpt(err, redact), None
    text = raw[:_SNIPPET * 4 + _SECRET_ROOM].decode("utf-8", "replace")
    return excerpt(text, redact), None


def retry_after(value: str | None) -> str | None:
    """A ``Retry-After`` worth passing on: delta-seconds or an HTTP date. Anything else is
    dropped: an upstream may put any text in a header, its callers' keys included."""
    if value is None:
        return None
    value = value.strip()
    if _DELAY.fullmatch(value):
        return value
    if len(value) <= 40:
        try:
            parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return value
    return None


def status_error(
    provider: str, status: int, raw: bytes, headers: Mapping[str, str],
    redact: Redact = _same, model: str | None = None,
) -> UpstreamError:
    """The error for an upstream's HTTP error status. The message names the provider (and
    the upstream model) and quotes what it said; its own type, code and param are kept
    (``ProviderFault``), except for a refused credential: that is keel's key, and the
    provider's ``invalid_api_key`` would tell the client its own key is wrong."""
    msg, fault = upstream_fault(raw, redact)
    who = f"provider '{provider}'" if not model else \
        f"provider '{provider}' (model {_quoted_name(model, redact)})"
    # Retry-After (on 429, 503, 529...) is kept: retries honour it and clients see it.
    delay = retry_after(headers.get("retry-after"))
    hdrs = {"retry-after": delay} if delay is not None else None
    if status == 429:
        return UpstreamRateLimited(f"{who} is rate limiting (429): {msg}", headers=hdrs,
                                   fault=fault)
    if status in (401, 403):
        return UpstreamError(
            f"{who} rejected keel's credentials ({status}): {msg}; "
            "check the provider's api_key in the keel config",
            code="upstream_auth_failed",
        )
    if status == 529:  # Anthropic: overloaded; temporary, so retryable like a 503
        return UpstreamUnavailable(f"{who} is overloaded ({status}): {msg}",
                                   code="upstream_overloaded", headers=hdrs, fault=fault)
    if status == 408 or status == 504:
        return UpstreamTimeout(f"{who} timed out ({status}): {msg}", headers=hdrs, fault=fault)
    if 400 <= status < 500:
        # The provider's own 4xx tells the client's SDK what happened; an unusual one is 400.
        return UpstreamRejected(f"{who} rejected the request ({status}): {msg}",
                                status=status if status in _KEPT_4XX else 400, fault=fault)
    return UpstreamError(f"{who} failed ({status}): {msg}", headers=hdrs, fault=fault)


def _quoted_name(name: str, redact: Redact) -> str:
    return repr(excerpt(name, redact, 80))


class Upstream:
    """A keep-alive connection pool to one provider's base URL."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        max_connections: int = 256,
        redact: Redact = _same,
    ) -> None:
        self.provider = provider
        self.redact = redact
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s)
        self.stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_s, sock_read=timeout_s
        )
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections, keepalive_timeout=30, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # Never keep upstream cookies: they would leak between keel's callers.
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"content-type": "application/json", **self.headers},
                skip_auto_headers=("User-Agent",),
                json_serialize=lambda o: orjson.dumps(o).decode(),
            )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"upstream '{self.provider}' used before start()")
        return self._session

    def url(self, path: str) -> URL:
        """The parsed URL for a path (cached: parsing a URL per request is measurable)."""
        url = self._urls.get(path)
        if url is None:
            raw = path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"
            url = self._urls[path] = URL(raw)
        return url

    async def post_json(
        self, path: str, body: JSON, *, params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None, model: str | None = None,
    ) -> Any:
        """POST ``body`` as JSON and return the parsed answer. ``model`` (the upstream
        model, named in error messages) defaults to the body's ``model``."""
        return (await self.post_json_raw(path, body, params=params, headers=headers,
                                         model=model))[0]

    async def post_json_raw(
        self, path: str, body: JSON, *, params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None, model: str | None = None,
    ) -> tuple[Any, bytes]:
        """As ``post_json``, and the bytes the answer was parsed from."""
        try:
            async with self.session.post(
                self.url(path), data=orjson.dumps(body), params=params, headers=headers,
                timeout=self.timeout,
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise status_error(self.provider, resp.status, raw, resp.headers,
                                       self.redact, model or _model_of(body))
        except TimeoutError:
            raise UpstreamTimeout(
                f"provider '{self.provider}' did not answer within "
                f"{self.timeout.total:g}s; raise timeout_s in its config if this is expected"
            ) from None
        except aiohttp.ClientPayloadError as exc:
            raise UpstreamUnavailable(self.redact(
                f"provider '{self.provider}' dropped the connection mid-response: {exc}"),
                code="upstream_connection_reset",
            ) from None
        except aiohttp.ClientConnectionError as exc:
            raise self._unreachable(exc) from None
        try:
            return orjson.loads(raw), raw
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"provider '{self.provider}' returned a body that is not JSON: "
                f"{_quoted(raw, self.redact)}",
                code="upstream_bad_response",
            ) from None

    def _unreachable(self, exc: Exception) -> UpstreamUnavailable:
        return UpstreamUnavailable(self.redact(
            f"provider '{self.provider}' is unreachable at {self.base_url}: {exc}"))

    async def stream_sse(
        self, path: str, body: JSON, *, params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None, model: str | None = None,
    ) -> AsyncIterator[tuple[str | None, bytes]]:
        """Yield ``(event, data)`` for each server-sent event of the response."""
        async for events in self.stream_sse_batches(path, body, params=params,
                                                    headers=headers, model=model):
            for item in events:
                yield item

    async def stream_sse_batches(
        self, path: str, body: JSON, *, params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None, model: str | None = None,
    ) -> AsyncIterator[list[tuple[str | None, bytes]]]:
        """As ``stream_sse``, the events that each read from the upstream completed, in a
        list (usually of one): a consumer iterates them without a step of this generator
        per event."""
        try:
            async with self.session.post(
                self.url(path), data=orjson.dumps(body), params=params, headers=headers,
                timeout=self.stream_timeout,
            ) as resp:
                if resp.status >= 400:
                    raw = await resp.read()
                    raise status_error(self.provider, resp.status, raw, resp.headers,
                                       self.redact, model or _model_of(body))
                ctype = resp.headers.get("content-type", "")
                if "text/event-stream" not in ctype and "json" in ctype:
                    # Some upstreams answer a stream request with a JSON error body and 200.
                    raw = await resp.read()
                    raise UpstreamError(
                        f"provider '{self.provider}' answered a stream request with JSON: "
                        f"{upstream_message(raw, self.redact)}", code="upstream_bad_response",
                    )
                events = SSEParser(self.provider)
                async for piece in resp.content.iter_any():
                    done = events.feed(piece)
                    if done:
                        yield done
                done = events.close()
                if done:
                    yield done
        except TimeoutError:
            raise UpstreamTimeout(
                f"provider '{self.provider}' stopped sending for "
                f"{self.stream_timeout.sock_read:g}s mid-stream; raise timeout_s if expected"
            ) from None
        except aiohttp.ClientPayloadError as exc:
            raise UpstreamError(
                self.redact(f"provider '{self.provider}' broke off the stream: {exc}"),
                code="upstream_stream_broken",
            ) from None
        except aiohttp.ClientConnectionError as exc:
            raise self._unreachable(exc) from None


class SSEParser:
    """Server-sent events from the bytes of a response, fed as they arrive.

    Lines end at ``\\n`` (trailing ``\\r`` dropped); a blank line ends an event; its
    ``data:`` lines are joined with ``\\n`` and ``event:`` names it; comments and other
    fields are ignored; at the end, an unfinished event still counts. Each ``feed`` splits
    what arrived into lines in one call. A line over ``MAX_SSE_LINE`` bytes is an error
    (an upstream that never ends a line would otherwise fill memory)."""

    __slots__ = ("_data", "_event", "_tail", "provider")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self._event: str | None = None
        self._data: list[bytes] = []
        self._tail = b""

    def feed(self, piece: bytes) -> list[tuple[str | None, bytes]]:
        """The events that ``piece`` completed."""
        buf = self._tail + piece if self._tail else piece
        lines = buf.split(b"\n")
        self._tail = lines.pop()
        if len(buf) > MAX_SSE_LINE:
            self._check(lines)
        return self._lines(lines)

    def close(self) -> list[tuple[str | None, bytes]]:
        """The event the stream ended in without its blank line, if any."""
        out = self._lines([self._tail]) if self._tail else []
        self._tail = b""
        if self._data:
            out.append((self._event, b"\n".join(self._data)))
            self._data = []
        return out

    def _lines(self, lines: list[bytes]) -> list[tuple[str | None, bytes]]:
        out: list[tuple[str | None, bytes]] = []
        data = self._data
        for line in lines:
            line = line.rstrip(b"\r\n")
            if not line:
                if data:
                    out.append((self._event, data[0] if len(data) == 1 else b"\n".join(data)))
                    data = self._data = []
                self._event = None
            elif line.startswith(b"data:"):
                data.append(line[5:].lstrip(b" "))
            elif line.startswith(b"event:"):
                self._event = line[6:].strip().decode()
        return out

    def _check(self, lines: list[bytes]) -> None:
        longest = max([len(self._tail), *(len(line) + 1 for line in lines)])
        if longest > MAX_SSE_LINE:
            raise UpstreamError(
                f"provider '{self.provider}' sent a stream line over {MAX_SSE_LINE} bytes",
                code="upstream_bad_response")


def _model_of(body: JSON) -> str | None:
    model = body.get("model")
    return model if isinstance(model, str) else None


def _quoted(raw: bytes, redact: Redact) -> str:
    """The first bytes of a body, decoded, redacted and quoted for an error message."""
    return repr(excerpt(raw[:120 + _SECRET_ROOM].decode("utf-8", "replace"), redact, 120))


def parse_json_event(provider: str, data: bytes, redact: Redact = _same) -> JSON:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            f"provider '{provider}' sent a stream event that is not JSON: "
            f"{_quoted(data, redact)}",
            code="upstream_bad_response",
        ) from None
    if not isinstance(obj, dict):
        raise UpstreamError(f"provider '{provider}' sent a stream event that is not an object",
                            code="upstream_bad_response")
    return obj
