"""The OpenAI-compatible inbound API: chat completions (incl. SSE), embeddings, models.

Every answer carries ``x-request-id`` (the OpenAI SDK's ``_request_id``; on ``/v1/messages``
also ``request-id``, the Anthropic SDK's): the client's own ``X-Request-ID`` when it sent a
usable one (printable ASCII, at most ``MAX_REQUEST_ID_CHARS``), else ``req_`` + the trace id
(no extra randomness drawn). The trace stores it, so a trace is found by the id a client
logged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from keel.errors import BodyTooLarge, KeelError, NotFound, RequestTimeout, TracesUnavailable
from keel.gateway.anthropic_format import STOP_SEQUENCE
from keel.gateway.flow import ChatFlow, run_embeddings
from keel.gateway.validate import check_chat, check_embeddings, parse_body
from keel.prompts import apply_prompt
from keel.types import JSON, Principal, Trace, new_trace_id

if TYPE_CHECKING:
    from keel.server.state import AppState

TRACE_HEADER = "x-keel-trace-id"
REQUEST_ID_HEADER = "x-request-id"
ANTHROPIC_REQUEST_ID_HEADER = "request-id"
MAX_REQUEST_ID_CHARS = 128
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def request_id(sent: str | None, trace_id: str) -> str:
    """The client's ``X-Request-ID`` when it is usable (printable ASCII, 1 to
    ``MAX_REQUEST_ID_CHARS`` characters once stripped), else ``req_`` + ``trace_id``."""
    if sent:
        sent = sent.strip()
        if 0 < len(sent) <= MAX_REQUEST_ID_CHARS and sent.isascii() and sent.isprintable():
            return sent
    return "req_" + trace_id


def id_headers(trace_id: str | None, rid: str, anthropic: bool = False) -> dict[str, str]:
    """The headers that name a request: keel's trace id and the request id (under the
    Anthropic SDK's name too when ``anthropic``)."""
    out = {REQUEST_ID_HEADER: rid}
    if anthropic:
        out[ANTHROPIC_REQUEST_ID_HEADER] = rid
    if trace_id:
        out[TRACE_HEADER] = trace_id
    return out


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


class Exchange:
    """One inbound request: authenticates, parses, and owns the trace until it is recorded."""

    def __init__(self, request: Request, endpoint: str, *, anthropic: bool = False) -> None:
        self.request = request
        self.state = state_of(request)
        self.headers_in = header_map(request)
        trace_id = new_trace_id()
        rid = request_id(self.headers_in.get(REQUEST_ID_HEADER), trace_id)
        self.trace = Trace(id=trace_id, start_time=time.time(), endpoint=endpoint,
                           request_id=rid)
        self.principal: Principal | None = None
        self.headers = id_headers(trace_id, rid, anthropic)
        """The headers every answer to this request carries (trace id, request id)."""

    async def open(self, check: Callable[[JSON], str]) -> JSON:
        """Authenticate, read and validate the body, attribute the trace."""
        st = self.state
        self.principal = st.keys.authenticate_gateway(api_key(self.headers_in))
        self.trace.key_id = self.principal.key_id
        self.trace.team = self.principal.team
        if not st.writer.accepting:
            raise TracesUnavailable(
                "keel cannot record traces right now (the store and the journal on disk "
                "both refuse writes, and the in-memory hold is full); retry later",
                headers={"retry-after": "5"})
        raw = await read_body(self.request, st.settings.max_body_bytes,
                              self.headers_in.get("content-length", ""))
        body = parse_body(raw, st.settings.max_body_bytes)
        if isinstance(body.get("model"), str):
            self.trace.model_requested = body["model"]
        check(body)
        self.trace.stream = bool(body.get("stream"))
        st.gateway.attribute(self.trace, self.principal, self.headers_in, body)
        self.trace.request_body = body
        return body

    def fail(self, exc: Exception,
             render: Callable[[KeelError, Mapping[str, str]], Response] = openai_error,
             ) -> Response:
        err = exc if isinstance(exc, KeelError) else unexpected(exc)
        if not self.trace.end_time:  # a held answer's trace is finished before the decision
            self.state.gateway.complete(self.trace, err.status, error=err)
        return render(err, self.headers)


async def chat_completions(request: Request) -> Response:
    ex = Exchange(request, "chat")

    def check(body: JSON) -> str:
        if "prompt" in body:
            apply_prompt(ex.state.prompts, body, ex.trace)
            ex.trace.model_requested = body.get("model")
        return check_chat(body)

    try:
        body = await ex.open(check)
        out = await ChatFlow(ex, body).run()
    except Exception as exc:
        return ex.fail(exc)
    if isinstance(out, dict):
        return json_response(openai_shaped(out), headers=ex.headers)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return StreamingResponse(openai_sse(out, include_usage), headers={
        **SSE_HEADERS, **ex.headers}, media_type="text/event-stream")


def openai_shaped(body: JSON) -> JSON:
    """A completion or chunk as OpenAI clients expect it: without keel's internal keys on its
    choices (``stop_sequence``). Copied only when there is one, never changed in place (the
    trace and the cache keep it for ``/v1/messages``)."""
    for choice in body.get("choices") or ():
        if choice.__class__ is dict and STOP_SEQUENCE in choice:
            break
    else:
        return body  # the usual case: one short loop, no copy
    return {**body, "choices": [
        {k: v for k, v in c.items() if k != STOP_SEQUENCE} if c.__class__ is dict else c
        for c in body["choices"]]}


async def openai_sse(chunks: AsyncIterator[JSON], include_usage: bool) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            if not include_usage and "usage" in chunk:
                if not chunk.get("choices"):
                    continue  # the usage-only chunk keel asked for on the client's behalf
                chunk = {k: v for k, v in chunk.items() if k != "usage"}
            yield b"data: " + orjson.dumps(openai_shaped(chunk)) + b"\n\n"
        yield b"data: [DONE]\n\n"
    except KeelError as exc:
        yield b"data: " + orjson.dumps(exc.to_openai()) + b"\n\n"
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


async def embeddings(request: Request) -> Response:
    ex = Exchange(request, "embeddings")
    try:
        body = await ex.open(check_embeddings)
        out = await run_embeddings(ex, body)
    except Exception as exc:
        return ex.fail(exc)
    return json_response(out, headers=ex.headers)


def _model_card(name: str, owner: str) -> JSON:
    return {"id": name, "object": "model", "created": 0, "owned_by": owner}


async def list_models(request: Request) -> Response:
    st = state_of(request)
    try:
        principal = st.keys.authenticate_gateway(api_key(request.headers))
    except KeelError as exc:
        return openai_error(exc)
    data = [_model_card(name, owner) for name, owner in st.gateway.visible_models(principal)]
    return json_response({"object": "list", "data": data})


async def get_model(request: Request) -> Response:
    st = state_of(request)
    name = request.path_params["model"]
    try:
        principal = st.keys.authenticate_gateway(api_key(request.headers))
        card = next((c for c in st.gateway.visible_models(principal) if c[0] == name), None)
        if card is None:
            raise NotFound(f"model '{name}' does not exist or this key may not use it",
                           param="model", code="model_not_found")
    except KeelError as exc:
        return openai_error(exc)
    return json_response(_model_card(*card))
