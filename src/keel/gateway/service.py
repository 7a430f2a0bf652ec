"""The gateway: providers and models held in memory, attribution, and trace completion.

Inbound protocol modules (``openai_api``, ``anthropic_api``) parse and answer HTTP;
everything they share — resolving a model for a caller, calling its provider, and
turning the outcome into a trace — lives here, so every protocol is traced the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, cast

from keel.config import KeelConfig, ModelConfig, Settings
from keel.costs.prices import model_price
from keel.errors import (
    KeelError,
    PermissionDenied,
    UnknownModel,
    UnsupportedOperation,
    UpstreamError,
)
from keel.gateway.executor import execute, is_filtered
from keel.gateway.models import ModelEntry, ProviderDeployment
from keel.gateway.providers.base import Provider, build_provider
from keel.gateway.wire import Wire, WireStreams
from keel.guard.redact import redact_json
from keel.routing import Balancer, BreakerBoard, Deployment, Plan, Router
from keel.secrets import SecretRedactor
from keel.streams import StreamAccumulator
from keel.telemetry.metrics import Metrics
from keel.telemetry.writer import TraceWriter
from keel.types import JSON, ChatResult, EmbeddingResult, Price, Principal, Trace

if TYPE_CHECKING:
    from keel.guard.policy import PolicySet
    from keel.switches import FeatureSwitches

log = logging.getLogger("keel.gateway")

# Called when a stream ends: (trace, model entry, assembled body, error or None).
StreamEnd = Callable[["Trace", "ModelEntry", JSON, "KeelError | None"], None]

# Body fields keel consumes for attribution and does not forward upstream.
KEEL_FIELDS = ("metadata",)


def attributed_feature(principal: Principal, requested: str | None, *,
                       fallback: str = "default", named_by: str = "X-Keel-Feature") -> str:
    """The feature a caller's traffic is counted under: the one it names (``requested``),
    else its key's, else ``fallback``. A key bound to a feature may name only that one unless
    it was created with ``feature_override`` (403 ``feature_not_allowed``; ``named_by`` says
    where the name came from). Gateway requests and OTLP-ingested spans both go through it."""
    if requested and principal.feature and requested != principal.feature \
            and not principal.feature_override:
        raise PermissionDenied(
            f"this key is bound to feature '{principal.feature}' and may not report "
            f"feature '{requested}'; drop {named_by} or use a key for that feature",
            code="feature_not_allowed")
    return requested or principal.feature or fallback


class Gateway:
    def __init__(
        self, settings: Settings, config: KeelConfig, writer: TraceWriter, metrics: Metrics,
        policies: PolicySet,
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.metrics = metrics
        self.providers: dict[str, Provider] = {p.name: build_provider(p) for p in config.providers}
        # every configured secret, kept out of what clients are sent and what is stored
        self.secrets = SecretRedactor.from_settings(settings, config)
        self.breakers = BreakerBoard(prefix=settings.redis_prefix)
        with_fallback = {m for r in config.routes if len([*r.targets, *r.fallbacks]) > 1
                         for m in [*(t.model for t in r.targets), *r.fallbacks]}
        self.models: dict[str, ModelEntry] = {
            m.name: self._entry(m, m.name in with_fallback) for m in config.models}
        self.router = Router(config.routes, models=self.models)  # every plan built here
        self._background: set[asyncio.Task[Any]] = set()
        # features whose stored content is not "full": feature -> "none" | "redacted"
        self.capture = {f.name: f.capture for f in config.features if f.capture != "full"}
        # feature kill switches (keel.switches), checked in memory by resolve; set by AppState
        self.switches: FeatureSwitches | None = None
        # guardrail policies (keel.guard.policy), found per request by feature and route
        self.policies = policies

    def _entry(self, m: ModelConfig, in_fallback_chain: bool) -> ModelEntry:
        spec = m.breaker
        if spec.enabled is None:
            auto = in_fallback_chain or len(m.all_deployments()) > 1
            spec = spec.model_copy(update={"enabled": auto})
        deployments = []
        for i, d in enumerate(m.all_deployments()):
            upstream = d.upstream or m.upstream_name
            label = d.name or (f"{d.provider}/{upstream}" if len(m.all_deployments()) == 1
                               else f"{d.provider}/{upstream}#{i}")
            name = f"{m.name}:{label}"
            deployments.append(Deployment(name, m.name, self.providers[d.provider], upstream,
                                          d.weight, self.breakers.add(name, spec)))
        return ModelEntry(m, self._price(m), Balancer(deployments, m.balance))

    def _price(self, m: ModelConfig) -> Price:
        """The configured price, else the built-in one for the upstream model, else free."""
        found = model_price(m)
        if found is not None:
            return found[1]
        if any(self.providers[d.provider].kind != "mock" for d in m.all_deployments()):
            log.warning("model '%s' has no price: keel does not know '%s'; its requests are "
                        "costed at 0 (add price: to the model in the config)", m.name,
                        m.upstream_name)
        return Price()

    async def start(self, redis: Any = None) -> None:
        for p in self.providers.values():
            await p.start()
        self.breakers.redis = redis
        await self.breakers.start()

    async def aclose(self) -> None:
        await self.drain()
        await self.breakers.aclose()
        for p in self.providers.values():
            with contextlib.suppress(Exception):
                await p.aclose()

    # --- resolution and attribution ----------------------------------------------------------

    def visible_models(self, principal: Principal) -> list[tuple[str, str]]:
        """(name, owner) of every model and route this caller may name."""
        out = [(m.name, m.deployments[0].provider.name) for m in self.models.values()
               if principal.may_use(m.name)]
        out += [(r, "keel-route") for r in self.router.routes if principal.may_use(r)]
        return out

    def resolve(self, principal: Principal, name: str, kind: str, trace: Trace) -> Plan:
        """The plan for a request: which models, in which order, with which policies."""
        if self.switches is not None:
            self.switches.check(trace.feature)  # a stopped feature: 503 feature_stopped
        route = self.router.route_for(name, trace.feature) if kind == "chat" else None
        entry = self.models.get(name)
        if (route is None and entry is None) or not principal.may_use(name):
            if (route is not None or entry is not None) and not principal.may_use(name):
                raise PermissionDenied(
                    f"this key may not use model '{name}'; it may use: "
                    f"{', '.join(principal.models or ()) or 'no models'}", param="model",
                    code="model_not_allowed")
            known = ", ".join(n for n, _ in self.visible_models(principal)) or "none"
            raise UnknownModel(f"model '{name}' does not exist; models you may use: {known}",
                               param="model")
        if route is None and entry is not None and entry.config.kind != kind:
            raise UnsupportedOperation(
                f"model '{name}' is a {entry.config.kind} model and cannot serve "
                f"{'chat completions' if kind == 'chat' else 'embeddings'}", param="model")
        plan = self.router.plan(name, route, user=trace.user, session=trace.session)
        trace.route, trace.variant = plan.route, plan.variant
        return plan

    @staticmethod
    def attribute(
        trace: Trace, principal: Principal, headers: Mapping[str, str], body: JSON
    ) -> None:
        """Fill who/what on the trace: team, feature, user, session, tags."""
        trace.key_id = principal.key_id
        trace.team = principal.team
        raw_md = body.get("metadata")
        md: dict[str, Any] = raw_md if isinstance(raw_md, dict) else {}
        trace.feature = attributed_feature(
            principal, headers.get("x-keel-feature") or md.get("feature"))
        user = body.get("user")
        trace.user = user if isinstance(user, str) else (headers.get("x-keel-user") or None)
        trace.session = headers.get("x-keel-session") or md.get("session") or None
        tags = {k: v for k, v in md.items() if k not in ("feature", "session")}
        raw_tags = headers.get("x-keel-tags")
        if raw_tags:
            for part in raw_tags.split(","):
                k, _, v = part.partition("=")
                if k.strip():
                    tags[k.strip()] = v.strip()
        trace.tags = tags

    # --- calls -------------------------------------------------------------------------------

    @staticmethod
    def upstream_body(dep: ProviderDeployment, body: JSON) -> JSON:
        out = {k: v for k, v in body.items() if k not in KEEL_FIELDS}
        out["model"] = dep.upstream
        return out

    async def chat(self, plan: Plan, body: JSON, trace: Trace) -> tuple[ChatResult, ModelEntry]:
        async def call(entry: ModelEntry, dep: ProviderDeployment) -> ChatResult:
            return await dep.provider.chat(self.upstream_body(dep, body))

        result, entry, _ = await execute(self.models, self.breakers, plan, trace, call,
                                         filtered=lambda r: is_filtered(r.body))
        trace.model_served = result.served_model
        trace.usage = result.usage
        return result, entry

    async def open_stream(
        self, plan: Plan, body: JSON, trace: Trace, on_end: StreamEnd | None = None,
        wire: Wire | None = None,
    ) -> tuple[AsyncIterator[JSON], ModelEntry]:
        """Start a streamed chat and pull its first chunk before anything reaches the client,
        so failures up to that point are ordinary errors and may fall back. Returns the
        traced chunk stream and the model that serves it. With ``wire``, an adapter that can
        (``wire_bytes``) puts each chunk's own bytes on it as the chunk is yielded."""

        async def call(entry: ModelEntry,
                       dep: ProviderDeployment) -> tuple[JSON, AsyncIterator[JSON]]:
            provider, sent = dep.provider, self.upstream_body(dep, body)
            if wire is not None:
                wire.data = None  # nothing left from an attempt that failed
            if wire is not None and getattr(provider, "wire_bytes", False):
                rest = cast(WireStreams, provider).chat_stream(sent, wire=wire)
            else:
                rest = provider.chat_stream(sent)
            try:
                first = await anext(rest, None)
            except BaseException:
                with contextlib.suppress(BaseException):
                    await rest.aclose()  # type: ignore[attr-defined]
                raise
            if first is None:
                raise UpstreamError(f"provider '{dep.provider.name}' closed the stream "
                                    "without sending anything", code="upstream_bad_response")
            return first, rest

        (first, rest), entry, _ = await execute(self.models, self.breakers, plan, trace, call)
        return self.traced_stream(trace, entry, first, rest, on_end), entry

    async def embed(self, plan: Plan, body: JSON, trace: Trace
                    ) -> tuple[EmbeddingResult, ModelEntry]:
        async def call(entry: ModelEntry, dep: ProviderDeployment) -> EmbeddingResult:
            return await dep.provider.embed(self.upstream_body(dep, body))

        result, entry, _ = await execute(self.models, self.breakers, plan, trace, call)
        trace.model_served = result.served_model
        trace.usage = result.usage
        return result, entry

    # --- completion --------------------------------------------------------------------------

    def complete(
        self, trace: Trace, status: int, *, price: Price | None = None,
        error: KeelError | None = None,
    ) -> None:
        """Finish the trace, price it, count it, and hand it to the writer (non-blocking).

        ``error`` is redacted in place (``scrub_error``): the client is then sent what the
        trace stores, with no configured secret in it."""
        if error is not None:
            self.scrub_error(error)
            trace.finish(error.status, error.error_type, error.message)
        else:
            trace.finish(status)
        if price is not None and (error is None or trace.usage.input_tokens
                                  or trace.usage.output_tokens):
            # A failed call is costed only for the tokens it used (no per-request fee).
            trace.cost_usd = price.cost(trace.usage)
        self.seal(trace)
        self.metrics.observe(trace)
        self.writer.submit(trace)

    def seal(self, trace: Trace) -> None:
        """Make a trace fit to store (and so to log): content as the feature's capture
        policy keeps it, and no configured secret in any text of it."""
        if not self.settings.capture_content:
            trace.request_body = trace.response_body = None
        elif self.capture:
            mode = self.capture.get(trace.feature or "")
            if mode == "none":
                trace.request_body = trace.response_body = None
            elif mode == "redacted":
                trace.request_body = redact_json(trace.request_body)
                trace.response_body = redact_json(trace.response_body)
        secrets = self.secrets
        if secrets:
            trace.request_body = secrets.redact_json(trace.request_body)
            trace.response_body = secrets.redact_json(trace.response_body)
            if trace.error_message:
                trace.error_message = secrets.redact(trace.error_message)
            if trace.tags:
                trace.tags = secrets.redact_json(trace.tags)
            if trace.user:
                trace.user = secrets.redact(trace.user)
            if trace.session:
                trace.session = secrets.redact(trace.session)

    def scrub_error(self, error: KeelError) -> None:
        """Redact configured secrets from an error's message and headers, in place, before
        it is rendered for a client or stored (one redaction, whatever raised it)."""
        secrets = self.secrets
        if secrets:
            clean = secrets.redact(error.message)
            if clean != error.message:
                error.message = clean
                error.args = (clean,)
            if error.headers:
                error.headers = secrets.redact_headers(error.headers)

    async def traced_stream(
        self, trace: Trace, entry: ModelEntry, first: JSON, rest: AsyncIterator[JSON],
        on_end: StreamEnd | None = None,
    ) -> AsyncIterator[JSON]:
        """Yield ``first`` then ``rest``, recording usage and output; finish the trace at end.

        When a stream breaks off before the provider reported usage, the usage is estimated
        from the messages and the text produced so far (and tagged as estimated), so the
        cost of what was generated is still counted."""
        acc = StreamAccumulator()
        error: KeelError | None = None
        try:
            chunk: JSON | None = first
            while chunk is not None:
                acc.add(chunk)
                if chunk.get("choices"):
                    trace.mark_first_token()
                yield chunk
                chunk = await anext(rest, None)
        except KeelError as exc:
            self.scrub_error(exc)  # it is sent to the client as it is, mid-stream
            error = KeelError(f"stream interrupted: {exc.message}", code=exc.error_type,
                              status=exc.status)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            error = KeelError("the client closed the connection mid-stream",
                              code="client_disconnected", status=499)
            raise
        except Exception as exc:
            error = KeelError(f"internal error mid-stream: {exc!r}", code="internal_error")
            raise
        finally:
            with contextlib.suppress(BaseException):
                await rest.aclose()  # type: ignore[attr-defined]
            trace.usage = acc.usage
            if error is not None and not (acc.usage.input_tokens or acc.usage.output_tokens) \
                    and acc.produced:
                trace.usage = acc.estimate(trace.request_body)
                trace.tags = {**trace.tags, "keel.usage": "estimated"}
            if acc.model:
                trace.model_served = acc.model
            body = acc.body()
            trace.response_body = body
            self.complete(trace, 200, price=entry.price, error=error)
            if on_end is not None:
                try:
                    on_end(trace, entry, body, error)
                except Exception:
                    log.exception("stream end hook failed for trace %s", trace.id)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run work after the response (budget settlement, cache writes); awaited on close."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed: %r", task.exception())

    async def drain(self) -> None:
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
