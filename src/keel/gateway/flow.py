"""The chat request flow shared by every inbound protocol.

plan -> rate limits and budget reservation -> cache read -> execute the plan (deployments,
retries, fallbacks) -> settle the budget with the actual cost -> cache write -> trace.

A cache hit still counts against rate limits (it is a request) but costs nothing: the
reservation is released and the trace records ``cache_hit`` and the cost it saved.
Budget settlement and cache writes run after the response is produced (they never delay
it); the gateway tracks those tasks and waits for them on shutdown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from keel.cache import CachePolicy, ResponseCache, completion_to_chunks, parse_cache_directive
from keel.errors import KeelError
from keel.gateway.wire import Wire
from keel.guard.engine import GuardRun, HeldForReview, PolicyBlocked
from keel.guard.policy import DEFAULT_REVIEW, Policy
from keel.limits import Admission, LimitRequest
from keel.routing import Plan
from keel.text import estimate_messages, estimate_text
from keel.types import JSON, Principal, Trace, Usage, new_trace_id

if TYPE_CHECKING:
    from keel.gateway.models import ModelEntry
    from keel.gateway.service import Gateway
    from keel.limits import Limits
    from keel.review import Review, ReviewService

log = logging.getLogger("keel.gateway")


@dataclass(slots=True)
class FlowParts:
    """What the chat and embeddings flows use besides the request itself. The composition
    root (the server's ``AppState``) builds one at start and hands the same object to every
    request; ``limits`` and ``cache`` are set once they are started (None until then)."""

    gateway: Gateway
    reviews: ReviewService  # answers held for a human decision
    limits: Limits | None = None
    cache: ResponseCache | None = None


class Inbound(Protocol):
    """What the flow reads from an exchange: an HTTP one (the server's ``Exchange``) or a
    call from inside keel (``internal``)."""

    trace: Trace
    principal: Principal | None
    headers_in: dict[str, str]  # request headers, every name lower-case (as ASGI gives them)


class ChatFlow:
    """One chat request through limits, cache and the plan's execution."""

    def __init__(self, parts: FlowParts, ex: Inbound, body: JSON) -> None:
        self.ex = ex
        self.parts = parts
        self.gw: Gateway = parts.gateway
        self.trace: Trace = ex.trace
        self.body = body
        self.admission: Admission | None = None
        self.cache_key: str | None = None
        self.semantic: tuple[str, list[float]] | None = None  # (params key, vector)
        self.policy: CachePolicy | None = None
        self.namespace = ""
        self.guard: GuardRun | None = None
        # the upstream's bytes of what ``run`` returns, when it is passed on unchanged
        self.wire = Wire()

    async def run(self) -> JSON | AsyncIterator[JSON]:
        """A completion body, or (for ``stream: true``) a chunk stream already started."""
        assert self.ex.principal is not None
        plan = self.gw.resolve(self.ex.principal, self.body["model"], "chat", self.trace)
        if self.gw.policies:
            policy = self.gw.policies.for_request(self.trace.feature, plan.route)
            if policy is not None and await self._guard_input(policy):
                return self._deliver(self._safe_reply())
        held = self.guard is not None and self.guard.policy.holds_output
        self.policy = caching = parse_cache_directive(self.ex.headers_in, plan.cache,
                                                      lower_names=True)
        limits = self.parts.limits
        if limits is not None and limits.active:  # no limits: no coroutine to await
            await self._admit(plan, limits)
        try:
            if caching.read or caching.write:  # no cache: no coroutine to await
                self.namespace = cache_namespace(plan, self.trace)
                hit = await self._cache_read(plan, caching)
                if hit is not None:
                    return await self._guarded_hit(hit) if held else self._serve_hit(hit)
            if self.body.get("stream") and not held:
                chunks, _ = await self.gw.open_stream(plan, self.body, self.trace,
                                                      on_end=self._stream_ended, wire=self.wire)
                return chunks
            body = self.body
            if held and body.get("stream"):  # the whole answer is scanned before any of it
                body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
            result, entry = await self.gw.chat(plan, body, self.trace)
        except BaseException:
            self._release()
            raise
        self.trace.response_body = result.body
        if held:
            return await self._guard_output(result.body, entry)
        self.gw.complete(self.trace, 200, price=entry.price)
        self._after_success(result.body, entry)
        self.wire.data = result.raw  # the answer as the upstream sent it, or None
        return result.body

    # --- guardrails --------------------------------------------------------------------------

    async def _guard_input(self, policy: Policy) -> bool:
        """Scan the request; True when it was blocked and the policy answers with its safe
        reply (else a block raises). The stored request is what the provider is sent."""
        self.guard = guard = GuardRun(policy, self.trace)
        try:
            self.body = await guard.inbound(self.body)
        except PolicyBlocked:
            guard.record()
            self.trace.request_body = guard.stored_request
            if policy.safe_reply is None:
                raise
            return True
        guard.record()
        if self.body is not self.trace.request_body:
            self.trace.request_body = self.body
        return False

    def _safe_reply(self) -> JSON:
        """The policy's safe reply for a blocked request, its trace finished."""
        assert self.guard is not None
        reply = self.guard.safe_completion(self.body.get("model"))
        self.trace.response_body = reply
        self.trace.tags = {**self.trace.tags, "keel.safe_reply": self.guard.policy.name}
        self.gw.complete(self.trace, 200)
        return reply

    async def _guarded_hit(self, hit: JSON) -> JSON | AsyncIterator[JSON]:
        t = self.trace
        t.cache_hit = True
        t.cost_saved_usd = float(hit.get("cost_usd") or 0.0)
        t.model_served = hit.get("model")
        self._settle(0.0, Usage())
        t.response_body = hit["completion"]
        return await self._guard_output(hit["completion"], None)

    async def _guard_output(self, completion: JSON, entry: ModelEntry | None
                            ) -> JSON | AsyncIterator[JSON]:
        """Scan the answer, then deliver it, answer with the safe reply, refuse it, or hold
        it for review. ``entry`` is None for a cache hit (nothing to settle or cache)."""
        guard, t = self.guard, self.trace
        assert guard is not None
        price = entry.price if entry is not None else None
        try:
            final = await guard.outbound(completion)
        except PolicyBlocked:
            guard.record()
            t.response_body = guard.stored_answer
            if price is not None:  # the tokens were spent: count them, refused or not
                t.cost_usd = price.cost(t.usage)
                self._settle(t.cost_usd, t.usage)
            if guard.policy.safe_reply is None:
                raise
            return self._deliver(self._safe_reply())
        guard.record()
        if guard.stored_answer is not None:
            t.response_body = guard.stored_answer
        reasons = guard.review_reasons(self.body.get("model"))
        review = None
        if reasons:
            review = await self._hold(final, reasons)
            t.tags = {**t.tags, "keel.review": review.id}
        if self.body.get("stream"):
            t.mark_first_token()  # the client gets the first token now, all at once
        self.gw.complete(t, 200, price=price)
        if entry is not None:  # cached as stored (nothing restored), and guarded on each use
            self._after_success(guard.stored_answer or completion, entry)
        if review is None:
            return self._deliver(final)
        if review.mode == "async":
            raise HeldForReview(review.id, review.expires_at)
        reviews = self.parts.reviews
        await reviews.wait(review.id, review.expires_at - time.time())
        return self._deliver(await reviews.release(review.id))

    async def _hold(self, final: JSON, reasons: list[JSON]) -> Review:
        guard, t = self.guard, self.trace
        assert guard is not None
        rule = guard.policy.review or DEFAULT_REVIEW
        return await self.parts.reviews.hold(
            trace_id=t.id, key_id=t.key_id, team=t.team, feature=t.feature,
            policy=guard.policy.name, policy_version=guard.policy.version, reasons=reasons,
            mode=rule.mode, timeout_s=rule.timeout_s, request=self.body, completion=final)

    def _deliver(self, completion: JSON) -> JSON | AsyncIterator[JSON]:
        """``completion`` as the client asked for it: the body, or replayed as chunks (the
        trace is already finished)."""
        if not self.body.get("stream"):
            return completion
        return _chunks(completion)

    # --- limits ------------------------------------------------------------------------------

    async def _admit(self, plan: Plan, limits: Limits) -> None:
        worst = worst_case(self.gw, plan, self.body)
        t = self.trace
        self.admission = await limits.admit(LimitRequest(
            request_id=t.id, key_id=t.key_id, team=t.team or "", feature=t.feature or "",
            model=plan.requested, worst_case_usd=worst))

    def _release(self) -> None:
        if self.admission is not None and self.parts.limits is not None:
            self.parts.limits.release_soon(self.admission)
            self.admission = None

    def _settle(self, cost: float, usage: Usage) -> None:
        if self.admission is not None and self.parts.limits is not None:
            tokens = usage.input_tokens + usage.output_tokens
            self.parts.limits.settle_soon(self.admission, cost, tokens)
            self.admission = None

    # --- cache -------------------------------------------------------------------------------

    @property
    def cache(self) -> ResponseCache:
        assert self.parts.cache is not None, "the cache is built when the app starts"
        return self.parts.cache

    async def _cache_read(self, plan: Plan, policy: CachePolicy) -> JSON | None:
        """A cached answer for the request (``policy`` reads or writes the cache)."""
        if policy.mode == "semantic":
            return await self._semantic_read(plan, policy)
        self.cache_key = ResponseCache.exact_key(self.namespace, self.body)
        return await self.cache.get(self.cache_key) if policy.read else None

    async def _semantic_read(self, plan: Plan, policy: CachePolicy) -> JSON | None:
        if plan.cache is None or not ResponseCache.semantic_eligible(self.body, plan.cache):
            return None
        vector = await self._embed(policy.embedding_model or "",
                                   ResponseCache.semantic_text(self.body))
        if vector is None:
            return None
        params_key = ResponseCache.semantic_params_key(self.namespace, self.body)
        self.semantic = (params_key, vector)
        if not policy.read:
            return None
        found = await self.cache.semantic_get(self.namespace, params_key, vector,
                                              policy.threshold)
        if found is None:
            return None
        entry, similarity = found
        self.trace.tags = {**self.trace.tags, "keel.cache_similarity": f"{similarity:.4f}"}
        return entry

    async def _embed(self, model: str, text: str) -> list[float] | None:
        """Embed through the gateway itself, so the call is traced and costed."""
        t = self.trace
        et = Trace(id=new_trace_id(), start_time=time.time(), endpoint="embeddings",
                   key_id=t.key_id, team=t.team, feature=t.feature, user=t.user,
                   session=t.session, model_requested=model,
                   tags={"keel.purpose": "semantic-cache", "keel.parent_trace": t.id})
        body = {"model": model, "input": text}
        et.request_body = body
        try:
            plan = self.gw.router.plan(model, None)
            result, entry = await self.gw.embed(plan, body, et)
        except KeelError as exc:
            self.gw.complete(et, exc.status, error=exc)
            log.warning("semantic cache lookup skipped: embedding failed: %s", exc.message)
            return None
        self.gw.complete(et, 200, price=entry.price)
        vector = result.body["data"][0]["embedding"]
        return list(vector) if isinstance(vector, list) else None

    def _serve_hit(self, hit: JSON) -> JSON | AsyncIterator[JSON]:
        t = self.trace
        t.cache_hit = True
        t.cost_saved_usd = float(hit.get("cost_usd") or 0.0)
        t.model_served = hit.get("model")
        completion: JSON = hit["completion"]
        self._settle(0.0, Usage())
        if self.body.get("stream"):
            return self._replay(completion)
        t.response_body = completion
        self.gw.complete(t, 200)
        return completion

    async def _replay(self, completion: JSON) -> AsyncIterator[JSON]:
        acc_trace = self.trace
        try:
            for chunk in completion_to_chunks(completion):
                acc_trace.mark_first_token()
                yield chunk
        finally:
            acc_trace.response_body = completion
            acc_trace.usage = Usage()
            self.gw.complete(acc_trace, 200)

    def _after_success(self, completion: JSON, entry: ModelEntry) -> None:
        self._settle(self.trace.cost_usd, self.trace.usage)
        policy = self.policy
        if policy is None or not policy.write or self.trace.error_type:
            return
        if any(c.get("finish_reason") == "content_filter"
               for c in completion.get("choices") or ()):
            return
        stored: JSON = {"completion": completion, "cost_usd": self.trace.cost_usd,
                        "model": self.trace.model_served}
        if self.cache_key is not None:
            self.gw.spawn(self.cache.put(self.cache_key, stored, policy.ttl_s))
        elif self.semantic is not None:
            params_key, vector = self.semantic
            self.gw.spawn(self.cache.semantic_put(self.namespace, params_key, vector, stored,
                                                  policy.ttl_s))

    def _stream_ended(self, trace: Trace, entry: ModelEntry, body: JSON,
                      error: KeelError | None) -> None:
        """Called when a stream finishes: settle what it cost; cache it if it completed."""
        if error is None:
            self._after_success(body, entry)
        elif trace.usage.input_tokens or trace.usage.output_tokens:
            self._settle(trace.cost_usd, trace.usage)
        else:
            self._release()


async def _chunks(completion: JSON) -> AsyncIterator[JSON]:
    for chunk in completion_to_chunks(completion):
        yield chunk


async def run_embeddings(parts: FlowParts, ex: Inbound, body: JSON) -> JSON:
    """Embeddings: rate limits and budgets apply as for chat (the worst case is the input
    estimate at the input price); no cache."""
    gw = parts.gateway
    t = ex.trace
    assert ex.principal is not None
    plan = gw.resolve(ex.principal, body["model"], "embedding", t)
    limits = parts.limits
    admission = None
    if limits is not None and limits.active:
        entry = gw.models[plan.chain[0]]
        worst = entry.price.cost(Usage(input_tokens=estimate_input(body.get("input"))))
        admission = await limits.admit(LimitRequest(
            request_id=t.id, key_id=t.key_id, team=t.team or "", feature=t.feature or "",
            model=plan.requested, worst_case_usd=worst))
    try:
        result, entry = await gw.embed(plan, body, t)
    except BaseException:
        if admission is not None and limits is not None:
            limits.release_soon(admission)
        raise
    gw.complete(t, 200, price=entry.price)
    if admission is not None and limits is not None:
        limits.settle_soon(admission, t.cost_usd, t.usage.input_tokens)
    return result.body


def estimate_input(inp: object) -> int:
    """Tokens of an embeddings ``input``: text estimated, token arrays counted."""
    if isinstance(inp, str):
        return estimate_text(inp)
    if isinstance(inp, list):
        if inp and all(isinstance(x, int) for x in inp):
            return len(inp)
        return sum(estimate_input(x) for x in inp)
    return 0


def cache_namespace(plan: Plan, trace: Trace) -> str:
    """Cached answers are shared within a team by default (``cache.scope``), so one
    tenant's answer is never replayed to another unless the route says ``shared``."""
    scope = plan.cache.scope if plan.cache is not None else "team"
    if scope == "shared":
        return plan.requested
    if scope == "key":
        return f"{plan.requested}\0key={trace.key_id or 'admin'}"
    return f"{plan.requested}\0team={trace.team}"


def worst_case(gw: Gateway, plan: Plan, body: JSON) -> float:
    """Exposed for tests: the reservation a request would make."""
    input_tokens = estimate_messages(body.get("messages") or [])
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    return max(gw.models[m].worst_case_usd(input_tokens, max_tokens, int(body.get("n") or 1))
               for m in plan.chain)

