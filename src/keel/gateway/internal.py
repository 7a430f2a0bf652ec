"""Calls from inside keel (the eval runner, judges, scheduled suites) into this process's
gateway.

They take exactly the path a client request takes after authentication — validation,
attribution, routing, rate limits and budgets, retries and fallbacks, the trace — so eval
traffic is traced and costed like any other, under its own team and feature. The gateway's
response cache is bypassed (``no-store``): an eval measures the model, and repeats must be
independent samples; the eval runner keeps its own result cache.

``LocalGateway`` is given the flow's collaborators (``FlowParts``) by the composition root,
and answers the ``keel.gateway.calls.ModelCalls`` protocol the evals depend on.
"""

from __future__ import annotations

import time

from keel.errors import KeelError
from keel.gateway.calls import Reply
from keel.gateway.flow import ChatFlow, FlowParts, run_embeddings
from keel.gateway.validate import check_chat, check_embeddings
from keel.types import JSON, Principal, Trace, new_trace_id

_HEADERS = {"x-keel-cache": "no-store"}


class _Exchange:
    """The parts of an inbound exchange the chat flow reads."""

    __slots__ = ("headers_in", "principal", "trace")

    def __init__(self, principal: Principal, trace: Trace) -> None:
        self.principal: Principal | None = principal
        self.trace = trace
        self.headers_in = _HEADERS


class LocalGateway:
    """The gateway of this process, called directly, as team ``team`` / feature ``feature``."""

    def __init__(self, parts: FlowParts, *, team: str = "eval", feature: str = "eval") -> None:
        self.parts = parts
        self.principal = Principal(key_id=None, team=team, feature=feature, models=None,
                                   feature_override=True)

    def _trace(self, endpoint: str, body: JSON, tags: dict[str, str] | None,
               prompt: tuple[str, int] | None) -> Trace:
        trace = Trace(id=new_trace_id(), start_time=time.time(), endpoint=endpoint)
        model = body.get("model")
        trace.model_requested = model if isinstance(model, str) else None
        if prompt is not None:
            trace.prompt_name, trace.prompt_version = prompt
        return trace

    def _open(self, trace: Trace, body: JSON, tags: dict[str, str] | None) -> None:
        self.parts.gateway.attribute(trace, self.principal, _HEADERS, body)
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
            out = await ChatFlow(self.parts, _Exchange(self.principal, trace), body).run()
            assert isinstance(out, dict)
        except KeelError as exc:
            return self._failed(trace, exc)
        return _reply(trace, out)

    async def embed(self, body: JSON, *, tags: dict[str, str] | None = None) -> Reply:
        trace = self._trace("embeddings", body, tags, None)
        try:
            self._open(trace, body, tags)
            check_embeddings(body)
            out = await run_embeddings(self.parts, _Exchange(self.principal, trace), body)
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
