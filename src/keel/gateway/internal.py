"""Calls from inside keel (the eval runner, judges, scheduled suites) into this process's
gateway.

They take exactly the path a client request takes after authentication — validation,
attribution, routing, rate limits and budgets, retries and fallbacks, the trace — so eval
traffic is traced and costed like any other, under its own team and feature. The gateway's
response cache is bypassed (``no-store``): an eval measures the model, and repeats must be
independent samples; the eval runner keeps its own result cache.

``LocalGateway`` is given the flow's collaborators (``FlowParts``) by the composition root,
and answers the ``keel.gateway.calls.ModelCalls`` protocol the evals depend on. A caller that
replays traffic (``keel demo``) may give it a clock of its own, and the route's cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from keel.errors import KeelError
from keel.gateway.calls import Reply
from keel.gateway.flow import ChatFlow, FlowParts, run_embeddings
from keel.gateway.validate import check_chat, check_embeddings
from keel.types import JSON, Principal, Trace, new_trace_id, trace_id_at

_HEADERS = {"x-keel-cache": "no-store"}
_CACHED: dict[str, str] = {}  # the route's cache policy, as for a request that says nothing


class _Exchange:
    """The parts of an inbound exchange the chat flow reads."""

    __slots__ = ("headers_in", "principal", "trace")

    def __init__(self, principal: Principal, trace: Trace, headers: dict[str, str]) -> None:
        self.principal: Principal | None = principal
        self.trace = trace
        self.headers_in = headers


class LocalGateway:
    """The gateway of this process, called directly, as team ``team`` / feature ``feature``.

    ``clock`` (epoch seconds): when each call's trace starts, instead of the system's time;
    the trace id then sorts by that time too. It is read once per call, when the call starts,
    and only in this process (no client can set it). ``cache``: read and write the route's
    response cache like a client request that sends no cache header (default: bypassed)."""

    def __init__(self, parts: FlowParts, *, team: str = "eval", feature: str = "eval",
                 clock: Callable[[], float] | None = None, cache: bool = False) -> None:
        self.parts = parts
        self.principal = Principal(key_id=None, team=team, feature=feature, models=None,
                                   feature_override=True)
        self.clock = clock
        self.headers = _CACHED if cache else _HEADERS

    def _trace(self, endpoint: str, body: JSON, tags: dict[str, str] | None,
               prompt: tuple[str, int] | None) -> Trace:
        if self.clock is None:
            trace = Trace(id=new_trace_id(), start_time=time.time(), endpoint=endpoint)
        else:
            now = self.clock()
            trace = Trace(id=trace_id_at(now), start_time=now, endpoint=endpoint)
        model = body.get("model")
        trace.model_requested = model if isinstance(model, str) else None
        if prompt is not None:
            trace.prompt_name, trace.prompt_version = prompt
        return trace

    def _open(self, trace: Trace, body: JSON, tags: dict[str, str] | None) -> None:
        self.parts.gateway.attribute(trace, self.principal, self.headers, body)
        if tags:
            trace.tags = {**trace.tags, **tags}
        trace.request_body = body

    async def chat(self, body: JSON, *, tags: dict[str, str] | None = None,
                   prompt: tuple[str, int] | None = None) -> Reply:
        """A non-streamed chat completion. Never raises a KeelError: it is on the reply."""
        body = {k: v for k, v in body.items() if k != "stream"}
        trace = self._trace("chat", body, tags, prompt)
        try:
            self._open(trace, body, tags)  # first: a refused request is attributed too
            check_chat(body)
            ex = _Exchange(self.principal, trace, self.headers)
            out = await ChatFlow(self.parts, ex, body).run()
            assert isinstance(out, dict)
        except KeelError as exc:
            return self._failed(trace, exc)
        return _reply(trace, out)

    async def embed(self, body: JSON, *, tags: dict[str, str] | None = None) -> Reply:
        trace = self._trace("embeddings", body, tags, None)
        try:
            self._open(trace, body, tags)
            check_embeddings(body)
            out = await run_embeddings(self.parts, _Exchange(self.principal, trace, self.headers),
                                       body)
        except KeelError as exc:
            return self._failed(trace, exc)
        return _reply(trace, out)

    def _failed(self, trace: Trace, exc: KeelError) -> Reply:
        if not trace.end_time:  # a held answer's trace is finished before the decision
            self.parts.gateway.complete(trace, exc.status, error=exc)
        reply = _reply(trace, None)
        reply.error = exc
        return reply


def _reply(trace: Trace, body: JSON | None) -> Reply:
    return Reply(body=body, trace_id=trace.id, latency_ms=trace.latency_ms,
                 cost_usd=trace.cost_usd, input_tokens=trace.usage.input_tokens,
                 output_tokens=trace.usage.output_tokens, model=trace.model_served)
