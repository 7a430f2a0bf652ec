"""``POST /v1/traces``: an OTLP/HTTP trace receiver (see ``keel.ingest.otlp``).

Ingested spans become traces with spend, so the endpoint admits the callers the gateway
admits and attributes their spans as the gateway attributes requests: a key with a role is
refused (403 ``role_key_not_for_gateway``), a feedback key too (403 ``feedback_only_key``),
and a key bound to a feature may not report another (403 ``feature_not_allowed``).

Decoding needs opentelemetry-proto (the keel[otel] extra), imported on the first request:
without it keel serves everything else, and this endpoint answers 501
``extra_not_installed`` naming the extra.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.config import KeelConfig
from keel.config.extras import OTEL, import_extra
from keel.gateway.service import attributed_feature
from keel.server.http import api_key, read_body, state_of
from keel.types import Principal

if TYPE_CHECKING:
    from keel.ingest.otlp import Outcome


def _process(raw: bytes, content_type: str | None, content_encoding: str | None, limit: int,
             principal: Principal, config: KeelConfig, capture_content: bool,
             ) -> tuple[Outcome, bytes, str]:
    from keel.ingest.otlp import MAX_EXPANSION, decode_request, ingest, response_for

    req, is_json = decode_request(raw, content_type, content_encoding, limit * MAX_EXPANSION)

    def feature_of(named: str | None, fallback: str) -> str:
        return attributed_feature(principal, named, fallback=fallback,
                                  named_by="the keel.feature attribute")

    out = ingest(req, principal, config, feature_of=feature_of,
                 capture_content=capture_content)
    body, media_type = response_for(out, as_json=is_json)
    return out, body, media_type


async def otlp_traces(request: Request) -> Response:
    st = state_of(request)
    principal = st.keys.authenticate_gateway(api_key(request.headers))
    import_extra(OTEL, "an OTLP ingest request (POST /v1/traces) arrived")  # else 501
    limit = st.settings.max_body_bytes
    raw = await read_body(request, limit)
    # A batch may decompress to tens of MB: decode it off the event loop, so the
    # gateway's requests are not held up meanwhile.
    out, body, media_type = await asyncio.to_thread(
        _process, raw, request.headers.get("content-type"),
        request.headers.get("content-encoding"), limit, principal, st.config,
        st.settings.capture_content)
    for trace in out.traces:
        st.gateway.seal(trace)  # the feature's capture policy, no configured secret
        st.writer.submit(trace)  # non-blocking; stored, rolled up and priced like any trace
    return Response(body, media_type=media_type)


def routes() -> list[Route]:
    return [Route("/v1/traces", otlp_traces, methods=["POST"])]
