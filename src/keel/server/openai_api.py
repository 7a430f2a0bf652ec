"""The OpenAI-compatible inbound API: chat completions (incl. SSE), embeddings, models.

The endpoints of the gateway's OpenAI protocol: each reads the request through an
``Exchange`` and hands it to ``keel.gateway.flow``. Request ids: ``keel.server.exchange``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from keel.errors import KeelError, NotFound
from keel.gateway.anthropic_format import STOP_SEQUENCE
from keel.gateway.flow import ChatFlow, run_embeddings
from keel.gateway.validate import check_chat, check_embeddings
from keel.gateway.wire import Wire
from keel.prompts import apply_prompt
from keel.server.exchange import SSE_HEADERS, Exchange
from keel.server.http import api_key, json_response, openai_error, state_of
from keel.types import JSON


async def chat_completions(request: Request) -> Response:
    ex = Exchange(request, "chat")

    def check(body: JSON) -> str:
        if "prompt" in body:
            apply_prompt(ex.state.prompts, body, ex.trace)
            ex.trace.model_requested = body.get("model")
        return check_chat(body)

    try:
        body = await ex.open(check)
        flow = ChatFlow(ex.state.flow, ex, body)
        out = await flow.run()
    except Exception as exc:
        return ex.fail(exc)
    if isinstance(out, dict):
        shaped = openai_shaped(out)
        raw = flow.wire.data
        if raw is not None and shaped is out:  # the upstream's answer, unchanged: its bytes
            return Response(raw, headers=ex.headers, media_type="application/json")
        return json_response(shaped, headers=ex.headers)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return StreamingResponse(openai_sse(out, include_usage, flow.wire), headers={
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


async def openai_sse(chunks: AsyncIterator[JSON], include_usage: bool,
                     wire: Wire | None = None) -> AsyncIterator[bytes]:
    """The chunks as server-sent events. A chunk sent on as the upstream sent it (``wire``
    holds its bytes once it is yielded) is written as those bytes, not serialised again."""
    try:
        async for chunk in chunks:
            raw = wire.data if wire is not None else None
            if not include_usage and "usage" in chunk:
                if not chunk.get("choices"):
                    continue  # the usage-only chunk keel asked for on the client's behalf
                raw = _without_null_usage(raw, chunk)
                chunk = {k: v for k, v in chunk.items() if k != "usage"}
            shaped = openai_shaped(chunk)
            if raw is None or shaped is not chunk:
                raw = orjson.dumps(shaped)
            yield b"data: " + raw + b"\n\n"
        yield b"data: [DONE]\n\n"
    except KeelError as exc:
        yield b"data: " + orjson.dumps(exc.to_openai()) + b"\n\n"
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


_NULL_USAGE = b',"usage":null}'


def _without_null_usage(raw: bytes | None, chunk: JSON) -> bytes | None:
    """``raw`` (the bytes ``chunk`` was parsed from) without its ``"usage":null`` member,
    when that is the object's last member and written compactly, as upstreams asked for
    usage send it on every chunk; else None (the chunk is serialised instead). The text
    ends with the member and the one closing brace, so the member is the top-level
    object's last; it is the only ``"usage"`` in the text, so the object has no other."""
    if raw is None or chunk["usage"] is not None or next(reversed(chunk)) != "usage" \
            or not raw.endswith(_NULL_USAGE) or raw.count(b'"usage"') != 1:
        return None
    return raw[:-len(_NULL_USAGE)] + b"}"


async def embeddings(request: Request) -> Response:
    ex = Exchange(request, "embeddings")
    try:
        body = await ex.open(check_embeddings)
        out = await run_embeddings(ex.state.flow, ex, body)
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
