"""One inbound gateway request (``Exchange``) and the ids that name it.

Every answer carries ``x-request-id`` (the OpenAI SDK's ``_request_id``; on ``/v1/messages``
also ``request-id``, the Anthropic SDK's): the client's own ``X-Request-ID`` when it sent a
usable one (printable ASCII, at most ``MAX_REQUEST_ID_CHARS``), else ``req_`` + the trace id
(no extra randomness drawn). The trace stores it, so a trace is found by the id a client
logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response

from keel.errors import KeelError, TracesUnavailable
from keel.gateway.validate import parse_body
from keel.server.http import api_key, header_map, openai_error, read_body, state_of, unexpected
from keel.types import JSON, Principal, Trace, new_trace_id

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


class Exchange:
    """One inbound request: authenticates, parses, and owns the trace until it is recorded.
    It is the ``keel.gateway.flow.Inbound`` the chat and embeddings flows read."""

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
