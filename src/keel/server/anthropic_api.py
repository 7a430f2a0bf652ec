"""The Anthropic-compatible inbound API: ``POST /v1/messages`` (JSON and SSE).

Any configured chat model answers, whatever its provider: the Anthropic body is
validated and translated to the OpenAI chat body keel speaks (``anthropic_inbound_format``),
goes through the same ``Exchange`` and ``Gateway`` calls as ``/v1/chat/completions`` (so
auth, attribution and traces are identical; the endpoint is recorded as ``messages`` and
the stored request is the translated OpenAI body), and the answer is translated back.
Errors use Anthropic's shape, ``{"type": "error", "error": {"type", "message"}}``.

``POST /v1/messages/count_tokens`` answers ``{"input_tokens": N}`` for a Messages body
without ``max_tokens``: the upstream's own count when the model (or the route's first model)
is served by a provider that can count (Anthropic's ``count_tokens``), else keel's estimate
(``keel.text``: about four characters per token, what budgets reserve with). It is
authenticated and checked like a message (the key must be allowed the model), costs
nothing, and is not traced.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from keel.errors import KeelError
from keel.gateway.anthropic_inbound_format import (
    AnthropicEventStream,
    anthropic_message_from_openai,
    openai_body_from_anthropic,
)
from keel.gateway.flow import ChatFlow
from keel.gateway.validate import check_chat, parse_body
from keel.prompts import apply_prompt
from keel.server.exchange import REQUEST_ID_HEADER, SSE_HEADERS, Exchange, id_headers, request_id
from keel.server.http import api_key, header_map, json_response, openai_error, read_body, state_of
from keel.text import estimate_messages, estimate_text
from keel.types import JSON, Trace, Usage, new_trace_id

OVERLOADED_STATUS = 529
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
          OVERLOADED_STATUS: "overloaded_error"}
ANTHROPIC_TYPES = frozenset({*_TYPES.values(), "api_error", "billing_error", "timeout_error"})


def error_status_and_body(exc: KeelError, request_id: str | None = None) -> tuple[int, JSON]:
    """A keel error -> (HTTP status, Anthropic error body). An Anthropic upstream's own
    error type is kept; any other error is typed by its status."""
    status = OVERLOADED_STATUS if exc.code == "upstream_overloaded" else exc.status
    said = exc.public_type
    kind = said if said in ANTHROPIC_TYPES and said != exc.type else _TYPES.get(status) or (
        "api_error" if status >= 500 else "invalid_request_error")
    body: JSON = {"type": "error", "error": {"type": kind, "message": exc.public_message}}
    if request_id:
        body["request_id"] = request_id
    return status, body


def anthropic_error(exc: KeelError, ids: Mapping[str, str] | None = None) -> Response:
    """``exc`` in Anthropic's error shape; ``ids`` are the request's naming headers, and the
    body's ``request_id`` is the request id, as Anthropic's own errors say it."""
    if exc.status == 202:  # held for review: the same pending-review body as on /v1/chat
        return openai_error(exc, ids)
    status, body = error_status_and_body(exc, (ids or {}).get(REQUEST_ID_HEADER))
    headers = dict(exc.headers)
    if ids:
        headers.update(ids)
    return json_response(body, status, headers)


def _translate_in_place(ex: Exchange, body: JSON) -> str:
    """``Exchange.open``'s check hook: validate the Anthropic body and replace it, in place,
    with the equivalent OpenAI chat body, so attribution and the stored trace use that.
    A registered prompt (``"prompt": "name@label"`` + ``variables``) is rendered as on
    ``/v1/chat/completions``."""
    with_prompt = "prompt" in body
    translated = openai_body_from_anthropic(body, with_prompt=with_prompt)
    if with_prompt:
        translated["prompt"] = body.get("prompt")
        translated["variables"] = body.get("variables")
        apply_prompt(ex.state.prompts, translated, ex.trace)
        ex.trace.model_requested = translated.get("model")
    body.clear()
    body.update(translated)
    return check_chat(body)


def _sse(event: str, data: JSON) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def anthropic_sse(chunks: AsyncIterator[JSON], model: str) -> AsyncIterator[bytes]:
    events = AnthropicEventStream(model)
    try:
        async for chunk in chunks:
            for name, data in events.feed(chunk):
                yield _sse(name, data)
        for name, data in events.finish():
            yield _sse(name, data)
    except KeelError as exc:
        yield _sse("error", error_status_and_body(exc)[1])
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


async def messages(request: Request) -> Response:
    ex = Exchange(request, "messages", anthropic=True)
    try:
        body = await ex.open(lambda b: _translate_in_place(ex, b))
        out = await ChatFlow(ex.state.flow, ex, body).run()
    except Exception as exc:
        return ex.fail(exc, anthropic_error)
    if not isinstance(out, dict):
        return StreamingResponse(anthropic_sse(out, body["model"]), headers={
            **SSE_HEADERS, **ex.headers}, media_type="text/event-stream")
    usage = Usage.from_openai(out.get("usage"))
    return json_response(anthropic_message_from_openai(out, usage, body["model"]),
                         headers=ex.headers)


async def count_tokens(request: Request) -> Response:
    """``POST /v1/messages/count_tokens``: the input tokens of a Messages request."""
    st = state_of(request)
    headers = header_map(request)
    trace = Trace(id=new_trace_id(), start_time=time.time(), endpoint="count_tokens")
    ids = id_headers(None, request_id(headers.get(REQUEST_ID_HEADER), trace.id), True)
    try:
        principal = st.keys.authenticate_gateway(api_key(headers))
        raw = await read_body(request, st.settings.max_body_bytes,
                              headers.get("content-length", ""))
        body = openai_body_from_anthropic(parse_body(raw, st.settings.max_body_bytes),
                                          counting=True)
        check_chat(body)
        gw = st.gateway
        gw.attribute(trace, principal, headers, body)  # a feature-bound key is held to it
        plan = gw.resolve(principal, body["model"], "chat", trace)
        dep = gw.models[plan.chain[0]].balancer.pick(set())  # None: every circuit is open
        counted = None if dep is None else await dep.provider.count_tokens(
            gw.upstream_body(dep, body))
    except KeelError as exc:
        return anthropic_error(exc, ids)
    if counted is None:
        counted = estimate_input(body)
    return json_response({"input_tokens": counted}, headers=ids)


def estimate_input(body: JSON) -> int:
    """keel's estimate of an OpenAI chat body's input tokens: messages and tool schemas."""
    tokens = estimate_messages(body.get("messages") or [])
    if body.get("tools"):
        tokens += estimate_text(orjson.dumps(body["tools"]).decode())
    return tokens
