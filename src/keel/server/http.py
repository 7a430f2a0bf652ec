"""HTTP helpers every route module uses: JSON answers, keel's errors in OpenAI's shape, the
API key a request sends, its headers, its body (bounded in size and time), the process's
state."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from keel.errors import BodyTooLarge, KeelError, RequestTimeout

if TYPE_CHECKING:
    from keel.server.state import AppState


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, headers=headers,
                    media_type="application/json")


def openai_error(exc: KeelError, ids: Mapping[str, str] | None = None) -> Response:
    """``exc`` in OpenAI's error shape; ``ids`` are the request's naming headers."""
    headers = dict(exc.headers)
    if ids:
        headers.update(ids)
    return json_response(exc.to_openai(), exc.status, headers)


def api_key(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else auth.strip()
    return headers.get("x-api-key") or headers.get("api-key")


def header_map(request: Request) -> dict[str, str]:
    """All request headers in one dict (ASGI names are lower-case); later duplicates win."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}


async def read_body(request: Request, limit: int, declared: str | None = None) -> bytes:
    """The whole body, refused early (by Content-Length) or as soon as it passes ``limit``.

    It must arrive within ``KEEL_BODY_TIMEOUT_S`` (else 408 ``request_timeout``): a client
    that sends a body slowly, or stops half-way, holds nothing for longer. Every route that
    takes a body reads it here."""
    if declared is None:
        declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(
            f"request body is {declared} bytes, over the {limit}-byte limit; "
            "send less, or raise KEEL_MAX_BODY_BYTES")
    chunks: list[bytes] = []
    size = 0
    timeout_s = state_of(request).settings.body_timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(
                        f"request body is over the {limit}-byte limit; send less, or raise "
                        "KEEL_MAX_BODY_BYTES")
                chunks.append(chunk)
    except TimeoutError:
        of = f" of {declared}" if declared else ""
        raise RequestTimeout(
            f"the request body did not arrive within {timeout_s:g} s ({size}{of} bytes "
            "received); send the whole body without pauses, or raise KEEL_BODY_TIMEOUT_S"
        ) from None
    return b"".join(chunks)


def state_of(request: Request) -> AppState:
    return request.app.state.keel  # type: ignore[no-any-return]


def unexpected(exc: Exception) -> KeelError:
    return KeelError(f"internal error in keel: {type(exc).__name__}: {exc}",
                     code="internal_error")
